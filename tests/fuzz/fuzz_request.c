// SPDX-License-Identifier: GPL-2.0-only
/*
 * A ring-buffer request record as userspace receives it (src/request.c):
 * any size, any bytes (the captured head and status line are the client's
 * and the server's), unpacked, decoded and written as a JSON line, as
 * record does with every record. The line must be one JSON object that
 * parses back.
 */
#include <json-c/json.h>
#include <string.h>

#include "agentprof/request.h"
#include "fuzz.h"
#include "request.h"

FUZZ_TARGET(request)
{
	static struct ap_request_event ev;
	struct request_decode_opts o = { .class_header = "X-Request-Class", .page_size = 4096 };
	struct json_object *j, *back;
	struct request req;
	const char *s;
	size_t len;
	void *copy;

	/* An exact heap copy: the record's bytes end where size says. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (request__unpack(&ev, copy, size) || request__decode(&req, &ev, &o)) {
		free(copy);
		return 0;
	}
	j = request__json(&req);
	FUZZ_CHECK(j != NULL, "no JSON for a decoded record");
	s = json_object_to_json_string_length(j, JSON_C_TO_STRING_PLAIN, &len);
	FUZZ_CHECK(s && strlen(s) == len && !memchr(s, '\n', len), "the line is not one line");
	back = json_tokener_parse(s);
	FUZZ_CHECK(back && json_object_is_type(back, json_type_object), "the line does not parse");
	json_object_put(back);
	json_object_put(j);
	free(copy);
	return 0;
}
