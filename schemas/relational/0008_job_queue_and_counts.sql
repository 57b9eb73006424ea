-- CI jobs at speed (issue 15, bench/job_dequeue.py and bench/tenant_jobs.py).
-- The queue is read in job order for an architecture, the vCPUs checked on the rows: an
-- index led by vcpus made every dequeue sort all the queued jobs that fit. Partial indexes
-- hold only the queued (or running) jobs, however many have ended.
DROP INDEX jobs_queue;
CREATE INDEX jobs_queue ON jobs (cpu_architecture, number) WHERE status = 'queued';
-- Each dequeue looks for lapsed leases: without this it read every running job.
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';
-- A tenant's job count (`total_count` of GET /api/tenants/{id}/jobs), kept by the jobs
-- projection as it inserts jobs: COUNT(*) over a big tenant's jobs takes longer than the
-- whole page should.
CREATE TABLE tenant_job_counts (
    tenant_id TEXT PRIMARY KEY,
    jobs BIGINT NOT NULL
);
INSERT INTO tenant_job_counts (tenant_id, jobs)
SELECT tenant_id, COUNT(*) FROM jobs GROUP BY tenant_id;
