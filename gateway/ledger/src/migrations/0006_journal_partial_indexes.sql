-- 2. An index holds only the rows its queries can find, so that a write does
--    not also file its NULLs (a pending entry has no settlement id, time or
--    resolution; most entries cancel nothing), and a finished entry leaves
--    the index of unresolved ones instead of joining the rows of its state.
--    The unresolved ones are kept in the order recovery reads them.
DROP INDEX journal_state;
CREATE INDEX journal_unresolved ON journal (received_at_ms)
    WHERE state = 'pending' OR state = 'unknown';
DROP INDEX journal_setl_id;
CREATE INDEX journal_setl_id ON journal (setl_id) WHERE setl_id IS NOT NULL;
DROP INDEX journal_setl_time_ms;
CREATE INDEX journal_setl_time_ms ON journal (setl_time_ms) WHERE setl_time_ms IS NOT NULL;
DROP INDEX journal_resolved_at_ms;
CREATE INDEX journal_resolved_at_ms ON journal (resolved_at_ms) WHERE resolved_at_ms IS NOT NULL;
DROP INDEX journal_cancels_setl_id;
CREATE INDEX journal_cancels_setl_id ON journal (cancels_setl_id) WHERE cancels_setl_id IS NOT NULL;
