/* RFC 5322 §3.3 date-time to a unix time and a zone offset. Accepts the obsolete forms
 * of §4.3 (two- and three-digit years, alphabetic zones, comments anywhere) and the
 * broken forms seen in real mail: asctime() order ("Fri Feb  3 00:31:43 2006"),
 * '-' between fields ("25-Dec-2011"), missing seconds, missing zone. */
#include "mime/mime-private.h"

#include <string.h>
#include <strings.h>

struct zone_name {
	const char *name;
	int minutes;
};

/* RFC 5322 §4.3 obs-zone; military zones other than Z count as -0000 ("SHOULD be
 * considered equivalent to -0000 unless there is out-of-band information"). */
static const struct zone_name zones[] = {
	{"UT", 0}, {"UTC", 0}, {"GMT", 0}, {"Z", 0},
	{"EST", -5 * 60}, {"EDT", -4 * 60}, {"CST", -6 * 60}, {"CDT", -5 * 60},
	{"MST", -7 * 60}, {"MDT", -6 * 60}, {"PST", -8 * 60}, {"PDT", -7 * 60},
};

static const char *const months[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
};

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool mime_date_parse(const char *s, size_t len, int64_t *time_r, int *tz_offset_r)
{
	struct rfc822_lexer lx;
	int day = -1, month = -1, hour = -1, min = 0, sec = 0, tz = 0;
	int64_t year = -1;
	int year_digits = 0;
	bool have_tz = false;

	rfc822_lexer_init(&lx, s, len);
	while (rfc822_skip_cfws(&lx)) {
		const unsigned char *t = lx.p;
		unsigned char c = *t;

		if (c == ',' || c == '.' || (c == '-' && !(lx.end - t >= 5 && is_digit(t[1]) &&
							    is_digit(t[2]) && is_digit(t[3]) &&
							    is_digit(t[4]) && hour >= 0))) {
			lx.p++;
			continue;
		}
		if ((c == '+' || c == '-') && lx.end - t >= 5 && is_digit(t[1])) {
			size_t n = 0;
			while (t + 1 + n < lx.end && is_digit(t[1 + n]))
				n++;
			lx.p = t + 1 + n;
			if (n == 4 && !have_tz) {
				int hh = (t[1] - '0') * 10 + (t[2] - '0');
				int mm = (t[3] - '0') * 10 + (t[4] - '0');
				if (hh < 24 && mm < 60) {
					tz = hh * 60 + mm;
					if (c == '-')
						tz = -tz;
					have_tz = true;
				}
			}
			continue;
		}
		if (is_alpha(c)) {
			size_t n = 0;
			while (t + n < lx.end && is_alpha(t[n]))
				n++;
			lx.p = t + n;
			if (n >= 3 && month < 0) {
				bool found = false;
				for (int i = 0; i < 12; i++) {
					if (strncasecmp((const char *)t, months[i], 3) == 0) {
						month = i + 1;
						found = true;
						break;
					}
				}
				if (found)
					continue;
			}
			if (!have_tz && hour >= 0) {
				for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
					if (strlen(zones[i].name) == n &&
					    strncasecmp((const char *)t, zones[i].name, n) == 0) {
						tz = zones[i].minutes;
						have_tz = true;
						break;
					}
				}
			}
			continue;
		}
		if (is_digit(c)) {
			int64_t v = 0;
			size_t n = 0;
			while (t + n < lx.end && is_digit(t[n])) {
				if (v < 100000000)
					v = v * 10 + (t[n] - '0');
				n++;
			}
			lx.p = t + n;
			if (lx.p < lx.end && *lx.p == ':') {
				/* time-of-day = hour ":" minute [ ":" second ] */
				int parts[3] = {(int)(v > 99 ? 99 : v), 0, 0};
				int np = 1;
				while (np < 3 && lx.p + 1 < lx.end && *lx.p == ':' && is_digit(lx.p[1])) {
					lx.p++;
					int w = 0;
					while (lx.p < lx.end && is_digit(*lx.p)) {
						if (w < 100)
							w = w * 10 + (*lx.p - '0');
						lx.p++;
					}
					parts[np++] = w;
				}
				if (hour < 0) {
					hour = parts[0];
					min = parts[1];
					sec = parts[2];
				}
				continue;
			}
			if (day < 0 && n <= 2 && v >= 1 && v <= 31 && year < 0) {
				day = (int)v;
			} else if (year < 0 && (day >= 0 || n >= 3)) {
				year = v;
				year_digits = (int)n;
			} else if (day < 0 && v >= 1 && v <= 31) {
				day = (int)v;
			}
			continue;
		}
		lx.p++; /* anything else: skip */
	}
	if (day < 0 || month < 0 || year < 0)
		return false;
	/* RFC 5322 §4.3: two-digit years below 50 are 20xx, others 19xx; three-digit
	 * years get 1900 added. */
	if (year_digits <= 2)
		year += year < 50 ? 2000 : 1900;
	else if (year_digits == 3)
		year += 1900;
	if (year > 9999)
		return false;
	if (hour < 0)
		hour = 0;
	if (hour > 23 || min > 59 || sec > 60)
		return false;
	if (sec == 60)
		sec = 59;
	int64_t days = days_from_civil(year, month, day);
	*time_r = days * 86400 + hour * 3600 + min * 60 + sec - (int64_t)tz * 60;
	*tz_offset_r = tz;
	return true;
}
