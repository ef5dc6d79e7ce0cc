/* tests/golden/tree-v1.h: golden vector for the tree blob format, version 1
 * (store/tree.h). Frozen: if an encoder change breaks this test, the format
 * changed and needs a new version, not a new vector. Built by golden_tree() in
 * tests/test-tree.c; each line below was checked by hand against the format. */
#ifndef BK_TESTS_GOLDEN_TREE_V1_H
#define BK_TESTS_GOLDEN_TREE_V1_H

static const char golden_tree_v1[] =
	"01" /* version 1 */
	"08" /* 8 entries, sorted bytewise */
	/* "bin": DIR, mode 0755, uid 0, gid 0, mtime 1700000000 (zigzag 3400000000),
	 * nsec 5, size 0, subtree 11 x 32 */
	"03" "62696e" "02" "ed03" "00" "00" "80c49fd50c" "05" "00"
	"1111111111111111111111111111111111111111111111111111111111111111"
	/* "data.txt": FILE, mode 0644, uid 1000, gid 1000, mtime 1700000001, nsec 0,
	 * size 300, content { version 1, level 0, 1 ref: 22 x 32, size 300 } */
	"08" "646174612e747874" "01" "a403" "e807" "e807" "82c49fd50c" "00" "ac02"
	"01" "00" "01" "2222222222222222222222222222222222222222222222222222222222222222" "ac02"
	/* "fifo": FIFO, mode 0600, uid 0, gid 0, mtime -1 (zigzag 1), nsec 999999999,
	 * size 0 */
	"04" "6669666f" "04" "8003" "00" "00" "01" "ff93ebdc03" "00"
	/* "link": SYMLINK, mode 0777, uid 0, gid 0, mtime 0, nsec 0, size 8,
	 * target "data.txt" */
	"04" "6c696e6b" "03" "ff03" "00" "00" "00" "00" "08" "08" "646174612e747874"
	/* "null": CHR, mode 0666, all zero, rdev 259 */
	"04" "6e756c6c" "05" "b603" "00" "00" "00" "00" "00" "8302"
	/* "sda": BLK, mode 0660, uid 0, gid 6, rdev 2048 */
	"03" "736461" "06" "b003" "00" "06" "00" "00" "00" "8010"
	/* "sock": SOCK, mode 0755 */
	"04" "736f636b" "07" "ed03" "00" "00" "00" "00" "00"
	/* "\xc3\xa9" (e acute in UTF-8, after every ASCII name): FILE, mode 0644, size 0,
	 * content { version 1, level 0, 0 refs } */
	"02" "c3a9" "01" "a403" "00" "00" "00" "00" "00" "01" "00" "00";

#endif
