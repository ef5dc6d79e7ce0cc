/* store/pipeline.h: an ordered pipeline. Jobs are submitted in order, run on a
 * pool of worker threads (one per CPU), and are taken back in the order they were
 * submitted, so results never depend on timing. The archiver uses it to hash,
 * compress and seal chunks while one thread reads and cuts; the restorer to
 * read, authenticate and decompress chunks while one thread writes.
 *
 * Jobs live in `depth` slots of `job_size` bytes owned by the pipeline (zeroed at
 * creation; buffers the caller hangs on them are the caller's to free, through
 * bk_pipeline_job()). A slot is filled after bk_pipeline_next() and handed over by
 * bk_pipeline_submit(); a job submitted with run == false is a marker that keeps
 * its place in the order without running.
 *
 * Errors: run's negative return is the job's result; its detail (thread-local) is
 * carried over and set again on the thread that takes the job.
 * Thread-safety: next, submit, take and free are called by one thread.
 */
#ifndef BK_STORE_PIPELINE_H
#define BK_STORE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct BkPipeline BkPipeline;
typedef int (*BkPipelineRun)(void *ctx, void *job);

int bk_pipeline_new(size_t depth, size_t job_size, BkPipelineRun run, void *ctx, BkPipeline **ret);
/* Waits for running jobs and stops the threads; results not taken are dropped. */
void bk_pipeline_free(BkPipeline *p);

/* The slot to fill for the next job, or NULL when every slot is in flight
 * (take one first). */
void *bk_pipeline_next(BkPipeline *p);
void bk_pipeline_submit(BkPipeline *p, bool run);
/* The oldest job in flight, once done, with run's result in *ret_err; NULL when
 * none is in flight. The slot stays valid until the next call to next. */
void *bk_pipeline_take(BkPipeline *p, int *ret_err);
size_t bk_pipeline_in_flight(const BkPipeline *p);
/* Slot i (0 <= i < depth), for freeing what the caller allocated in it. */
void *bk_pipeline_job(BkPipeline *p, size_t i);

#endif
