// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "plan/output.h"

static int emit(yaml_emitter_t *e, yaml_event_t *ev)
{
	return yaml_emitter_emit(e, ev) ? 0 : -EIO;
}

static int scalar(yaml_emitter_t *e, const char *s, bool plain_ok)
{
	yaml_event_t ev;

	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), plain_ok,
				     !plain_ok, plain_ok ? YAML_ANY_SCALAR_STYLE
							 : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
	return emit(e, &ev);
}

static int node(yaml_emitter_t *e, struct json_object *o)
{
	yaml_event_t ev;
	size_t i, n;
	int err = 0;

	switch (json_object_get_type(o)) {
	case json_type_object:
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if (emit(e, &ev))
			return -EIO;
		json_object_object_foreach(o, k, v)
		{
			err = scalar(e, k, true) ?: node(e, v);
			if (err)
				return err;
		}
		yaml_mapping_end_event_initialize(&ev);
		return emit(e, &ev);
	case json_type_array:
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
		if (emit(e, &ev))
			return -EIO;
		n = json_object_array_length(o);
		for (i = 0; i < n && !err; i++)
			err = node(e, json_object_array_get_idx(o, i));
		if (err)
			return err;
		yaml_sequence_end_event_initialize(&ev);
		return emit(e, &ev);
	case json_type_string:
		/* Strings that would read back as numbers or booleans are quoted. */
		return scalar(e, json_object_get_string(o), false);
	case json_type_null:
		return scalar(e, "null", true);
	default:
		return scalar(e, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), true);
	}
}

static int write_handler(void *data, unsigned char *buf, size_t size)
{
	return fwrite(buf, 1, size, data) == size;
}

int plan__yaml_emit(struct json_object *obj, FILE *out)
{
	yaml_emitter_t e;
	yaml_event_t ev;
	int err = -EIO;

	if (!yaml_emitter_initialize(&e))
		return -ENOMEM;
	yaml_emitter_set_output(&e, write_handler, out);
	yaml_emitter_set_unicode(&e, 1);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	if (emit(&e, &ev))
		goto cleanup;
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	if (emit(&e, &ev) || node(&e, obj))
		goto cleanup;
	yaml_document_end_event_initialize(&ev, 1);
	if (emit(&e, &ev))
		goto cleanup;
	yaml_stream_end_event_initialize(&ev);
	err = emit(&e, &ev);
cleanup:
	yaml_emitter_delete(&e);
	return err;
}
