-- Three indexes from before the dispatchers (0024, 0030) that no query uses any more:
-- the dispatchers claim and count through the partial `*_queue` indexes, and retention
-- deletes rows that are almost all `sent` or `succeeded`, which an index led by the
-- status does not narrow. Each cost every order an index entry, and every claim and
-- outcome an update of it.
DROP INDEX webhook_deliveries_due;
DROP INDEX emails_due;
DROP INDEX order_lines_due;
