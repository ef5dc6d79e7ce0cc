/* tests/golden/snapshot-v1.h: golden vector for the snapshot record format,
 * version 1 (store/snapshot.h). Frozen: if an encoder change breaks this test,
 * the format changed and needs a new version, not a new vector. Built by
 * golden() in tests/test-snapshot.c; varints checked against an independent
 * LEB128 implementation. */
#ifndef BK_TESTS_GOLDEN_SNAPSHOT_V1_H
#define BK_TESTS_GOLDEN_SNAPSHOT_V1_H

static const char golden_snapshot_v1[] =
	"01"                         /* version 1 */
	"8089818283898506"           /* time_us 1700000000123456, zigzag */
	"03" "646231"                /* host "db1" */
	"0c" "70672f6d61696e2f62617365" /* name "pg/main/base" */
	"07" "70672d62617365"        /* kind "pg-base" */
	"02"                         /* 2 tags */
	"05" "6461696c79"            /* "daily" */
	"0b" "7072652d75706772616465" /* "pre-upgrade" */
	"abababababababababababababababababababababababababababababababab" /* root */
	"8080808004"                 /* logical_bytes 2^30 */
	"b960"                       /* new_bytes 12345 */
	"b009"                       /* files 1200 */
	"c096b102"                   /* duration_us 5000000 */
	"01"                         /* has_parent */
	"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd" /* parent */
	"03"                         /* 3 meta pairs, in the writer's order */
	"11" "73797374656d5f6964656e746966696572"       /* "system_identifier" */
	"13" "37333031323334353637383930313233343536"   /* "7301234567890123456" */
	"08" "74696d656c696e65" "01" "31"               /* "timeline" = "1" */
	"09" "73746172745f6c736e" "09" "302f32303030303238"; /* "start_lsn" = "0/2000028" */

#endif
