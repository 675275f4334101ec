-- Two indexes repeat a primary key: `events_by_tenant` has `events_pkey`'s columns, and
-- `orders_newest` has `orders_pkey`'s in descending order (a B-tree is read backwards
-- as well). Each cost every order's INSERT an index entry for nothing.
DROP INDEX events_by_tenant;
DROP INDEX orders_newest;
