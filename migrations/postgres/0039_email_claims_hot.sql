-- The email dispatcher's claim (`claimed_by`, `claimed_until`) was the costliest single
-- statement while orders were placed: 690 buffers a call, about 23 per email claimed,
-- because an update of an indexed column is not a HOT update and writes a new entry in
-- every index of the table. The claim now returns the rows it claims (one statement, no
-- read of the batch by `claimed_by`), and a claim's extension looks for its rows among
-- the queued ones (`emails_queue`), so `claimed_by` needs no index: the claim updates
-- no indexed column. A HOT update also needs room on the row's page for the new
-- version: pages of `emails` are filled to 80 % (new pages; old ones as they are).
DROP INDEX emails_claims;
ALTER TABLE emails SET (fillfactor = 80);
