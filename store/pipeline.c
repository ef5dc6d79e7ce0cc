#include "store/pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/error.h"

#define MAX_THREADS 8

enum { FREE, QUEUED, RUNNING, DONE };

typedef struct {
	int state, err;
	char detail[512];
} Slot;

struct BkPipeline {
	BkPipelineRun run;
	void *ctx;
	size_t depth, job_size;
	unsigned char *jobs;
	Slot *slots;
	uint64_t head, tail, next_run; /* head: oldest in flight; next_run: next to start */
	pthread_mutex_t lock;
	pthread_cond_t queued, done;
	pthread_t threads[MAX_THREADS];
	size_t nthreads;
	bool stopping;
};

void *bk_pipeline_job(BkPipeline *p, size_t i) { return p->jobs + i * p->job_size; }

static void *worker(void *arg)
{
	BkPipeline *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stopping && p->next_run == p->tail)
			pthread_cond_wait(&p->queued, &p->lock);
		if (p->stopping)
			break;
		size_t i = p->next_run++ % p->depth;
		Slot *s = &p->slots[i];
		if (s->state != QUEUED)
			continue; /* a marker */
		s->state = RUNNING;
		pthread_mutex_unlock(&p->lock);
		int e = p->run(p->ctx, bk_pipeline_job(p, i));
		if (e < 0)
			snprintf(s->detail, sizeof(s->detail), "%s", bk_error_detail());
		pthread_mutex_lock(&p->lock);
		s->err = e;
		s->state = DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int bk_pipeline_new(size_t depth, size_t job_size, BkPipelineRun run, void *ctx, BkPipeline **ret)
{
	BkPipeline *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->run = run;
	p->ctx = ctx;
	p->depth = depth;
	p->job_size = job_size;
	p->jobs = calloc(depth, job_size);
	p->slots = calloc(depth, sizeof(*p->slots));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->queued, NULL);
	pthread_cond_init(&p->done, NULL);
	int e = p->jobs && p->slots ? 0 : -ENOMEM;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t want = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (size_t)cpus;
	while (e == 0 && p->nthreads < want) {
		e = -pthread_create(&p->threads[p->nthreads], NULL, worker, p);
		if (e == 0)
			p->nthreads++;
	}
	if (e < 0) {
		bk_pipeline_free(p);
		return bk_errorf(e, "cannot start worker threads");
	}
	*ret = p;
	return 0;
}

void bk_pipeline_free(BkPipeline *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->queued);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->queued);
	pthread_cond_destroy(&p->done);
	free(p->slots);
	free(p->jobs);
	free(p);
}

size_t bk_pipeline_in_flight(const BkPipeline *p) { return (size_t)(p->tail - p->head); }

void *bk_pipeline_next(BkPipeline *p)
{
	if (p->tail - p->head == p->depth)
		return NULL;
	return bk_pipeline_job(p, p->tail % p->depth);
}

void bk_pipeline_submit(BkPipeline *p, bool run)
{
	Slot *s = &p->slots[p->tail % p->depth];
	pthread_mutex_lock(&p->lock);
	s->err = 0;
	s->state = run ? QUEUED : DONE;
	p->tail++;
	if (run)
		pthread_cond_signal(&p->queued);
	pthread_mutex_unlock(&p->lock);
}

void *bk_pipeline_take(BkPipeline *p, int *ret_err)
{
	if (p->head == p->tail)
		return NULL;
	size_t i = p->head % p->depth;
	Slot *s = &p->slots[i];
	pthread_mutex_lock(&p->lock);
	while (s->state != DONE)
		pthread_cond_wait(&p->done, &p->lock);
	s->state = FREE;
	pthread_mutex_unlock(&p->lock);
	p->head++;
	*ret_err = s->err;
	if (s->err < 0) /* details are per thread: bring the worker's over */
		bk_errorf(s->err, "%s", s->detail);
	return bk_pipeline_job(p, i);
}
