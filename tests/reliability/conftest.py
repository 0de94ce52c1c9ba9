"""Fixtures for the fault and load suites (`make reliability`).

The server harness and its fixtures are the protocol suites' own (tests/proto/conftest.py and
tests/proto/sarntest.py), loaded from there unchanged: `sarn_factory`, `server`,
`shared_cert`, the SIGALRM time limit (`@pytest.mark.timeout(N)`, default 120 s), the
private copy of the binary and the server log attached to failures.
"""
import importlib.util
import os
import sys

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "proto")
PROTO = os.path.normpath(PROTO)
HERE = os.path.dirname(os.path.abspath(__file__))
for p in (PROTO, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

# Load tests/proto/conftest.py under another module name, so that it never clashes with this
# conftest module, and re-export its hooks and fixtures.
_spec = importlib.util.spec_from_file_location("sarn_proto_conftest",
                                               os.path.join(PROTO, "conftest.py"))
_proto = importlib.util.module_from_spec(_spec)
sys.modules["sarn_proto_conftest"] = _proto
_spec.loader.exec_module(_proto)

pytest_configure = _proto.pytest_configure
pytest_unconfigure = _proto.pytest_unconfigure
pytest_runtest_makereport = _proto.pytest_runtest_makereport
pytest_report_header = _proto.pytest_report_header
_time_limit = _proto._time_limit
shared_cert = _proto.shared_cert
sarn_factory = _proto.sarn_factory
server = _proto.server
