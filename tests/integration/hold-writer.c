/* hold-writer: holds the write transaction of a repository's index (LMDB), as a
 * bunker process stopped in its commit would, for concurrent.sh: prints "held"
 * once it has it, then waits until killed.
 *
 *   hold-writer REPO/index
 */
#include <lmdb.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	MDB_env *env;
	MDB_txn *txn;
	if (argc != 2) {
		fprintf(stderr, "usage: hold-writer INDEX_DIR\n");
		return 2;
	}
	int rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_mapsize(env, 256ull << 30); /* as store/index.c */
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 4);
	if (rc == 0)
		rc = mdb_env_open(env, argv[1], MDB_NOTLS, 0660);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc != 0) {
		fprintf(stderr, "hold-writer: %s\n", mdb_strerror(rc));
		return 1;
	}
	printf("held\n");
	fflush(stdout);
	for (;;)
		pause();
}
