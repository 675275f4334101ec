-- As 0039 did for emails: the webhook dispatcher's claim returns the deliveries it
-- claims with their endpoints and events (one statement, no read of the batch by
-- `claimed_by`), and a claim's extension looks for its rows among the pending ones
-- (`webhook_deliveries_queue`), so `claimed_by` needs no index and a claim, which then
-- changes no indexed column, is a HOT update (before: about 31 buffers per delivery
-- claimed, a new entry in each of the table's five indexes). New pages of
-- `webhook_deliveries` are filled to 80 %, leaving room for the claimed version.
DROP INDEX webhook_deliveries_claims;
ALTER TABLE webhook_deliveries SET (fillfactor = 80);
