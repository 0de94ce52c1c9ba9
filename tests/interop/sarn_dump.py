"""Runs the mime-dump program and parses its output."""
import subprocess


def parse_dump(out):
    """Returns a list of dicts, one per message."""
    res = []
    pos = 0
    cur = None
    while pos < len(out):
        nl = out.index(b"\n", pos)
        line = out[pos:nl].decode("latin-1")
        pos = nl + 1
        key, _, rest = line.partition(" ")
        if key in ("FILE", "ENVELOPE", "BODYSTRUCTURE", "BODY", "BASE-SUBJECT", "FROM", "TO",
                   "CC", "DISPLAY-FROM", "MESSAGE-ID", "IN-REPLY-TO", "REFERENCES"):
            n = int(rest)
            if n < 0:
                val = None
                pos += 1
            else:
                val = out[pos:pos + n]
                pos += n + 1
            if key == "FILE":
                cur = {"parts": []}
                res.append(cur)
            cur[key.lower()] = val
        elif key == "SIZE":
            cur["size"] = int(rest)
        elif key == "PART":
            fields = rest.split(" ")
            p = {"idx": int(fields[0])}
            for f in fields[1:]:
                k, _, v = f.partition("=")
                p[k] = v if k == "section" else int(v)
            cur["parts"].append(p)
        elif key == "DATE":
            cur["date"] = rest
        elif key == "END":
            cur = None
    return res


def run_dump(dumper, files, chunk=None):
    args = [dumper]
    if chunk:
        args += ["--chunk", str(chunk)]
    out = subprocess.run(args + list(files), check=True, stdout=subprocess.PIPE).stdout
    return parse_dump(out)
