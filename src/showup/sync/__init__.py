"""One calendar's sync: fetch changes, plan, apply (DESIGN "The flow")."""
