-- The person number (psn_no) of the journalled request: the platform's own,
-- pseudonymous number for the insured person, as the hospital sent it in
-- the settlement, cancel, admission or discharge. The gateway's own 2601,
-- which reverses a call whose outcome is unknown, must carry it.
-- Not an ID number, not a name: no other personal data comes with it.
-- Nullable: rows journalled before this migration have none, and a message
-- that names no person journals none. The ledger checks it on write and on
-- read (1 to 30 characters, no control characters).
ALTER TABLE journal ADD COLUMN psn_no TEXT;
