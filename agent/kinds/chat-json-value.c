/* One JSON value in memory read into a tree (pb__chat_json_parse): a
 * chat's head and other small items, through yajl. Member names are
 * malloc'd (no pool: a head has a few). */
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

struct tree_ctx {
	pb__cj_t *stack[PB__CHAT_DEPTH_MAX + 1];
	char *keys[PB__CHAT_DEPTH_MAX + 1];
	int depth;
	pb__cj_t *root;
	int err;
};

static int tree_put(struct tree_ctx *t, pb__cj_t *v, bool container)
{
	pb__cj_t *parent;
	char *key;

	if (v == NULL) {
		t->err = PB_ENOMEM;
		return 0;
	}
	if (t->depth == 0) {
		if (t->root != NULL) {
			pb__cj_free(v);
			t->err = PB_EDATA_FORMAT;
			return 0;
		}
		t->root = v;
	} else {
		parent = t->stack[t->depth - 1];
		key = t->keys[t->depth - 1];
		t->keys[t->depth - 1] = NULL;
		if ((parent->type == PB__CJ_OBJ) != (key != NULL) || pb__cj_add(parent, key, v) != 0) {
			free(key);
			pb__cj_free(v);
			t->err = PB_EDATA_FORMAT;
			return 0;
		}
		free(key);
	}
	if (container) {
		if (t->depth >= PB__CHAT_DEPTH_MAX) {
			t->err = PB_ETOOBIG;
			return 0;
		}
		t->keys[t->depth] = NULL;
		t->stack[t->depth++] = v;
	}
	return 1;
}

static int t_null(void *c) { return tree_put(c, pb__cj_new(PB__CJ_NULL), false); }
static int t_bool(void *c, int b) { return tree_put(c, pb__cj_new(b ? PB__CJ_TRUE : PB__CJ_FALSE), false); }
static int t_num(void *c, const char *s, size_t len)
{
	pb__cj_t *v = pb__cj_new_str(s, len);

	if (v != NULL)
		v->type = PB__CJ_NUM;
	return tree_put(c, v, false);
}
static int t_str(void *c, const unsigned char *s, size_t len)
{
	return tree_put(c, pb__cj_new_str((const char *)s, len), false);
}
static int t_smap(void *c) { return tree_put(c, pb__cj_new(PB__CJ_OBJ), true); }
static int t_sarr(void *c) { return tree_put(c, pb__cj_new(PB__CJ_ARR), true); }
static int t_key(void *c, const unsigned char *k, size_t len)
{
	struct tree_ctx *t = c;

	if (t->depth == 0 || memchr(k, 0, len) != NULL)
		return 0;
	free(t->keys[t->depth - 1]);
	t->keys[t->depth - 1] = strndup((const char *)k, len);
	return t->keys[t->depth - 1] != NULL;
}
static int t_end(void *c)
{
	struct tree_ctx *t = c;

	if (t->depth == 0)
		return 0;
	t->depth--;
	free(t->keys[t->depth]);
	t->keys[t->depth] = NULL;
	return 1;
}

static const yajl_callbacks tree_callbacks = {
	.yajl_null = t_null,
	.yajl_boolean = t_bool,
	.yajl_number = t_num,
	.yajl_string = t_str,
	.yajl_start_map = t_smap,
	.yajl_map_key = t_key,
	.yajl_end_map = t_end,
	.yajl_start_array = t_sarr,
	.yajl_end_array = t_end,
};

int pb__chat_json_parse(const uint8_t *buf, size_t len, pb__cj_t **out)
{
	struct tree_ctx t;
	yajl_handle y;
	int err = 0, i;

	memset(&t, 0, sizeof(t));
	if (len > PB__CHAT_MSG_MAX)
		return PB_ETOOBIG;
	y = yajl_alloc(&tree_callbacks, NULL, &t);
	if (y == NULL)
		return PB_ENOMEM;
	if (yajl_parse(y, buf, len) != yajl_status_ok || yajl_complete_parse(y) != yajl_status_ok)
		err = t.err ? t.err : PB_EMALFORMED;
	yajl_free(y);
	for (i = 0; i <= PB__CHAT_DEPTH_MAX; i++)
		free(t.keys[i]);
	if (err == 0 && (t.root == NULL || t.depth != 0))
		err = PB_EMALFORMED;
	if (err != 0) {
		pb__cj_free(t.root);
		return err;
	}
	*out = t.root;
	return 0;
}
