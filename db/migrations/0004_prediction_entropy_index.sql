-- Model-entropy sorts in the TUI read clips in order from this index (139 -> 43 ms at
-- 150k clips), like JS sorts use predictions_run_strategy_js.
CREATE INDEX predictions_run_strategy_entropy ON predictions (run_id, strategy, entropy);
