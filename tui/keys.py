"""One table of every key and action, so bindings, the help screen and the palette agree.

A keyboard-first tool lives or dies by discoverable keys; keeping them in one list means
the `?` help screen and the command palette (ctrl+p) can never drift from what the keys
actually do.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class KeySpec:
    keys: str  # Textual binding keys, comma separated
    action: str  # action string on the scope's screen (or app)
    title: str  # short name (footer, palette)
    help: str  # one line for help and palette
    group: str
    scope: str = "browser"  # browser | app | jobs | metrics | annotators
    footer: bool = False
    palette: bool = True
    confirm: str = ""  # a destructive action: the question asked before it runs

    @property
    def display(self) -> str:
        names = {
            "space": "space",
            "exclamation_mark": "!",
            "greater_than_sign": ">",
            "left_square_bracket": "[",
            "right_square_bracket": "]",
            "question_mark": "?",
            "slash": "/",
            "escape": "esc",
            "enter": "enter",
            "full_stop": ".",
            "comma": ",",
        }
        return " ".join(names.get(k, k) for k in self.keys.split(","))

    def binding(self) -> Binding:
        """The key's binding; a destructive action runs through the app's confirmation."""
        action = self.action
        if self.confirm:
            action = f"app.confirm_action({self.scope!r}, {self.action!r})"
        return Binding(self.keys, action, self.title, show=self.footer)


KEYS: tuple[KeySpec, ...] = (
    # --- browsing
    KeySpec("up,k", "table_cursor(-1)", "up", "previous clip", "Browse", palette=False),
    KeySpec("down,j", "table_cursor(1)", "down", "next clip", "Browse", palette=False),
    KeySpec("pageup,pagedown", "noop", "page", "page up / down", "Browse", palette=False),
    KeySpec("home,end", "noop", "first/last", "first / last clip", "Browse", palette=False),
    KeySpec("enter,z", "toggle_detail", "detail", "full-screen detail pane (toggle)", "Browse"),
    KeySpec(
        "tab", "focus_next", "focus", "move focus table / detail / filter", "Browse", palette=False
    ),
    KeySpec(
        "shift+tab", "focus_previous", "focus back", "move focus backwards", "Browse", palette=False
    ),
    KeySpec(
        "ctrl+d",
        "scroll_detail(1)",
        "detail down",
        "page the detail pane down, whichever pane has focus",
        "Browse",
    ),
    KeySpec(
        "ctrl+u",
        "scroll_detail(-1)",
        "detail up",
        "page the detail pane up, whichever pane has focus",
        "Browse",
    ),
    KeySpec("s", "next_sort", "sort", "sort by the next column (or click a header)", "Browse"),
    KeySpec("S", "reverse_sort", "reverse", "reverse the sort direction", "Browse"),
    KeySpec("R", "pick_run", "run", "choose the run and strategy shown", "Browse"),
    KeySpec(
        "right_square_bracket",
        "cycle_strategy(1)",
        "next strategy",
        "next strategy of the run",
        "Browse",
    ),
    KeySpec(
        "left_square_bracket",
        "cycle_strategy(-1)",
        "prev strategy",
        "previous strategy of the run",
        "Browse",
    ),
    # --- filtering
    KeySpec(
        "slash",
        "focus_filter",
        "filter",
        "type a filter (enter applies, esc returns)",
        "Filter",
        footer=True,
    ),
    KeySpec("c", "clear_filter", "clear filter", "remove every filter term", "Filter"),
    KeySpec(
        "A",
        "cycle_term('ambiguity')",
        "ambiguity",
        "cycle ambiguity: low / medium / high / any",
        "Filter",
    ),
    KeySpec("P", "cycle_term('split')", "split", "cycle the split filter", "Filter"),
    KeySpec("L", "cycle_term('label')", "label", "cycle the human-majority label filter", "Filter"),
    KeySpec("D", "cycle_term('dataset')", "dataset", "cycle the dataset filter", "Filter"),
    KeySpec(
        "exclamation_mark",
        "toggle_term('disagree')",
        "disagree",
        "only clips where the model disagrees with humans",
        "Filter",
    ),
    KeySpec("M", "toggle_term('flagged')", "flagged", "only flagged clips", "Filter"),
    KeySpec(
        "greater_than_sign",
        "toggle_term('js')",
        "JS > t",
        "only clips with JS above the threshold (settings)",
        "Filter",
    ),
    # --- listening
    KeySpec(
        "space", "play", "play", "play / stop the clip (browser in `serve`)", "Listen", footer=True
    ),
    KeySpec("x", "export_clip", "export wav", "write the clip as a WAV file", "Listen"),
    # --- auditing
    KeySpec("f", "toggle_flag", "flag", "toggle the default flag", "Audit", footer=True),
    KeySpec(
        "F", "pick_flag", "flag as…", "toggle a flag chosen from the configured names", "Audit"
    ),
    KeySpec("t", "tag", "tag", "add or remove a tag (with completion)", "Audit"),
    KeySpec("n", "note", "note", "edit the clip's note", "Audit"),
    KeySpec(
        "1,2,3,4,5,6,7,8,9",
        "noop",
        "vote 1-9",
        "cast your own vote for label i",
        "Audit",
        palette=False,
    ),
    KeySpec("0", "vote(0)", "clear vote", "remove your own vote", "Audit"),
    KeySpec(
        "V",
        "toggle_advance",
        "advance after vote",
        "move to the next clip after each vote 1-9 (toggle)",
        "Audit",
    ),
    KeySpec(
        "u",
        "undo",
        "undo",
        "undo the last flag / tag / note / vote / bulk change",
        "Audit",
        footer=True,
    ),
    KeySpec("b", "bulk", "bulk", "flag or tag every clip of the current filter", "Audit"),
    KeySpec(
        "Q",
        "audit_queue",
        "audit queue",
        "sort by audit priority, highest first, and go to the top (README: Audit queue)",
        "Audit",
    ),
    KeySpec(
        "full_stop",
        "queue_step(1)",
        "queue next",
        "next clip of the audit queue (starts the queue when another sort is shown)",
        "Audit",
    ),
    KeySpec(
        "comma", "queue_step(-1)", "queue previous", "previous clip of the audit queue", "Audit"
    ),
    # --- models and outputs
    KeySpec(
        "r",
        "resample",
        "re-sample",
        "queue a sampling job for this clip / flagged / filter",
        "Models",
    ),
    KeySpec("e", "export", "export", "export the filter as a subset, or metric tables", "Models"),
    # --- app
    KeySpec(
        "J",
        "app.show_jobs",
        "jobs",
        "jobs screen: progress, cancel, retry",
        "Screens",
        scope="app",
        footer=True,
    ),
    KeySpec(
        "m",
        "app.show_metrics",
        "metrics",
        "metrics screen: JS, BC, R², F1, ECE with CIs",
        "Screens",
        scope="app",
        footer=True,
    ),
    KeySpec(
        "a",
        "app.show_annotators",
        "annotators",
        "annotators screen: votes, agreement, reliability, confusion rows",
        "Screens",
        scope="app",
    ),
    KeySpec(
        "question_mark", "app.show_help", "help", "this help", "Screens", scope="app", footer=True
    ),
    KeySpec(
        "ctrl+p",
        "app.command_palette",
        "palette",
        "command palette: every action, themes",
        "Screens",
        scope="app",
        palette=False,
    ),
    KeySpec(
        "O",
        "app.toggle_own_votes",
        "own votes in human",
        "count your own votes in the human distribution (toggle)",
        "Screens",
        scope="app",
    ),
    KeySpec(
        "W",
        "app.cycle_label_rule",
        "label lists",
        "how IEMOCAP label lists and secondary labels count: split, each, first only, "
        "first + secondary x0.5 (cycles; stored as the workspace's conventions)",
        "Screens",
        scope="app",
    ),
    KeySpec("q", "app.quit", "quit", "quit ambiscope", "Screens", scope="app"),
    # --- jobs screen
    KeySpec(
        "x",
        "cancel_job",
        "cancel",
        "cancel the highlighted job",
        "Jobs screen",
        scope="jobs",
        footer=True,
        confirm="Cancel the highlighted job? r on this screen queues it again.",
    ),
    KeySpec(
        "r",
        "retry_job",
        "retry",
        "retry a failed or cancelled job",
        "Jobs screen",
        scope="jobs",
        footer=True,
    ),
    KeySpec(
        "w",
        "start_worker",
        "worker",
        "start a background worker if none is alive",
        "Jobs screen",
        scope="jobs",
        footer=True,
    ),
    KeySpec(
        "escape",
        "app.pop_screen",
        "back",
        "back to the browser",
        "Jobs screen",
        scope="jobs",
        footer=True,
        palette=False,
    ),
    # --- metrics screen
    KeySpec(
        "r",
        "recompute",
        "recompute",
        "recompute the metrics with bootstrap CIs",
        "Metrics screen",
        scope="metrics",
        footer=True,
    ),
    KeySpec(
        "c",
        "choose_columns",
        "columns",
        "choose the metric columns shown",
        "Metrics screen",
        scope="metrics",
    ),
    KeySpec(
        "h",
        "cycle_reference",
        "reference",
        "compare with another reference: human, synthetic, combined, human-ds, human-mace",
        "Metrics screen",
        scope="metrics",
    ),
    KeySpec(
        "t",
        "toggle_calibration",
        "calibrate",
        "raw or calibrated table (temperature fitted on train; rows on the other clips)",
        "Metrics screen",
        scope="metrics",
    ),
    KeySpec(
        "escape",
        "cancel_or_back",
        "cancel/back",
        "cancel a running computation, else back",
        "Metrics screen",
        scope="metrics",
        footer=True,
        palette=False,
    ),
    # --- annotators screen
    KeySpec(
        "d",
        "next_dataset",
        "dataset",
        "show the next dataset's raters",
        "Annotators screen",
        scope="annotators",
        footer=True,
    ),
    KeySpec(
        "c",
        "cycle_model",
        "model",
        "confusion rows of the other fitted model (Dawid-Skene / MACE)",
        "Annotators screen",
        scope="annotators",
        footer=True,
    ),
    KeySpec(
        "escape",
        "app.pop_screen",
        "back",
        "back to the browser",
        "Annotators screen",
        scope="annotators",
        footer=True,
        palette=False,
    ),
)


def spec_for(scope: str, action: str) -> KeySpec:
    """The key of `action` on the `scope` screen (KeyError when there is none)."""
    for spec in KEYS:
        if spec.scope == scope and spec.action == action:
            return spec
    raise KeyError(f"no key for {action!r} on the {scope} screen")


def bindings(scope: str) -> list[BindingType]:
    return [k.binding() for k in KEYS if k.scope == scope and k.action != "noop"]
