-- Three indexes from before the dispatchers (0024, 0030) that no query uses any more:
-- the dispatchers claim and count through the partial `*_queue` indexes, and retention
-- deletes rows that are almost all `sent` or `succeeded`, which an index led by the
-- status does not narrow. Each cost every order an index entry, and every claim and
-- outcome an update of it.
DROP INDEX webhook_deliveries_due;
DROP INDEX emails_due;
DROP INDEX order_lines_due;

-- Every node's email dispatcher is woken when emails are queued (at the commit), as
-- webhook deliveries wake theirs (0024): the statement that queues them needs no
-- second one to say so.
CREATE FUNCTION kassa_emails_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kassa_emails_due', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER emails_written AFTER INSERT ON emails
    FOR EACH STATEMENT EXECUTE FUNCTION kassa_emails_written();
