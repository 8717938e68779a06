/* json_min.h - minimal JSON lookups for vgpu-cdi-hook (an object's member, a string value). */
#ifndef VGPU_K8S_JSON_MIN_H
#define VGPU_K8S_JSON_MIN_H

#include <stddef.h>

/* In the object starting at obj (after optional whitespace, '{'), finds member key and returns
 * where its value starts, or NULL (not an object, no such member, malformed). */
const char *json_find_member(const char *obj, const char *end, const char *key);
/* Copies the JSON string value at p (escapes \" \\ \/ only) into out. 0, -EINVAL or
 * -ENAMETOOLONG. p may be NULL (then -EINVAL). */
int json_get_string(const char *p, const char *end, char *out, size_t outlen);

#endif
