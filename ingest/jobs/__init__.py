"""CI job writes: submissions, start and cancel for developers; dequeue, reports, logs and
artifacts for provisioners and runners."""
