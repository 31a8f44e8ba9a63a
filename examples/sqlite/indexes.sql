-- Tuning for the workload in workload.py: run on the freshly built database before the queries.
-- Only CREATE INDEX and PRAGMA statements may appear here; the harness rejects anything else.
--
-- Switches: the harness reads the `name = number` lines of the block below. A CREATE INDEX
-- statement whose index has a switch runs only when the switch is above 0 (1 = create it);
-- statements without a switch always run. The switches are there for the offline `mutate`
-- agent, which can change numbers but cannot write SQL; an agent that writes SQL may simply
-- add, edit or remove CREATE INDEX statements.
/* switches
idx_orders_customer = 0
idx_items_order = 0
idx_customers_email = 0
idx_orders_day = 0
idx_items_product = 0
idx_customers_name = 0
idx_orders_status = 0
*/
CREATE INDEX idx_orders_customer ON orders(customer_id);
CREATE INDEX idx_items_order ON items(order_id);
CREATE INDEX idx_customers_email ON customers(email);
CREATE INDEX idx_orders_day ON orders(day);
CREATE INDEX idx_items_product ON items(product_id);
CREATE INDEX idx_customers_name ON customers(name COLLATE NOCASE);
CREATE INDEX idx_orders_status ON orders(status);

-- PRAGMAs the offline agent tunes span two lines, so that the value sits on a `key = number`
-- line (mutate does not read `PRAGMA key = number;` written on one line).
PRAGMA
    cache_size = 200;    -- the page cache, in pages of 4 KiB (a negative number means KiB)

-- Out of the offline agent's reach on purpose: from 0 it could only try a few bytes.
PRAGMA mmap_size = 0;    -- bytes of the file read through memory mapping; 0 turns it off
