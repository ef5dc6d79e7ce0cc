#include "store/backend.h"

#include <errno.h>
#include <stdlib.h>

#include "store/error.h"

int bk_backend_put(BkBackend *b, const char *name, const void *data, size_t len, bool create_only)
{
	return b->ops->put(b, name, data, len, create_only);
}

int bk_backend_put_file(BkBackend *b, const char *name, const char *tmp_path, bool create_only)
{
	return b->ops->put_file(b, name, tmp_path, create_only);
}

int bk_backend_get(BkBackend *b, const char *name, uint64_t off, size_t len, void *buf,
		   size_t *ret_n)
{
	return b->ops->get(b, name, off, len, buf, ret_n);
}

int bk_backend_size(BkBackend *b, const char *name, uint64_t *ret_size)
{
	return b->ops->size(b, name, ret_size);
}

int bk_backend_sync(BkBackend *b, const char *name) { return b->ops->sync(b, name); }

int bk_backend_get_all(BkBackend *b, const char *name, size_t max, uint8_t **ret, size_t *ret_len)
{
	uint64_t size;
	int r = bk_backend_size(b, name, &size);
	if (r < 0)
		return r;
	if (size > max)
		return bk_errorf(BK_E_CORRUPT, "%s: %llu bytes, more than the %zu allowed", name,
				 (unsigned long long)size, max);
	uint8_t *buf = malloc(size ? (size_t)size : 1);
	if (!buf)
		return -ENOMEM;
	size_t n;
	r = bk_backend_get(b, name, 0, (size_t)size, buf, &n);
	if (r < 0 || n != size) {
		free(buf);
		return r < 0 ? r : bk_errorf(BK_E_CORRUPT, "%s: changed size while read", name);
	}
	*ret = buf;
	*ret_len = n;
	return 0;
}

int bk_backend_list(BkBackend *b, const char *prefix, BkListFn cb, void *ud)
{
	return b->ops->list(b, prefix, cb, ud);
}

int bk_backend_remove(BkBackend *b, const char *name) { return b->ops->remove(b, name); }

void bk_backend_free(BkBackend *b)
{
	if (b)
		b->ops->free(b);
}
