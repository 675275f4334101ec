-- `events_by_tenant` has the columns of the events' primary key: each event's INSERT
-- paid for an index entry the primary key's own index already gives.
DROP INDEX events_by_tenant;
