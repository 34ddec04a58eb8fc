// SPDX-License-Identifier: GPL-2.0-only
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan/source.h"

static bool is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* The body lands in a temporary file that profile__load() reads like any profile. */
static int fetch(const char *url, FILE *to, char *err, size_t errsz)
{
	char cerr[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode rc;
	CURL *c;

	c = curl_easy_init();
	if (!c) {
		snprintf(err, errsz, "cannot start an HTTP client (libcurl) for %s", url);
		return -ENOMEM;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, to);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		snprintf(err, errsz, "fetching %s failed: %s: is the exporter running there?", url,
			 cerr[0] ? cerr : curl_easy_strerror(rc));
		return -EIO;
	}
	if (status != 200) {
		snprintf(err, errsz, "fetching %s: HTTP status %ld: the URL must be the exporter's "
			 "/profile", url, status);
		return -EIO;
	}
	return fflush(to) ? -errno : 0;
}

struct profile *source__load(const char *src, char *err, size_t errsz)
{
	char tmp[] = "/tmp/agentprof-plan-XXXXXX";
	struct profile *p = NULL;
	FILE *f = NULL;
	int fd;

	if (!is_url(src))
		return profile__load(src, err, errsz);
	fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(err, errsz, "cannot create a temporary file for %s: %s", src, strerror(errno));
		return NULL;
	}
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		snprintf(err, errsz, "cannot write a temporary file: %s", strerror(errno));
		goto cleanup;
	}
	if (!fetch(src, f, err, errsz))
		p = profile__load(tmp, err, errsz);
	fclose(f);
cleanup:
	unlink(tmp);
	return p;
}
