-- Embedded (SQLite) schema, step 8: the due-row indexes of the two work
-- queues carry what a claim reads (due time, id, attempts), so a claim walks
-- its LIMIT of index entries and never the table, whatever the backlog. The
-- claims name these indexes (INDEXED BY): without statistics SQLite took
-- deliveries_by_status and sorted every pending row for each claim, which
-- with a 100,000-row backlog cost ~60 ms of the single writer per claim.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id, attempts) WHERE status = 'pending';
DROP INDEX events_due;
CREATE INDEX events_due ON events (next_attempt_at, id, attempts) WHERE status = 'pending';
