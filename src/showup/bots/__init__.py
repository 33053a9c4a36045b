"""Bots: which meetings get a bot, when it joins, and converging stored bots to that.

Modules:

- ``plan``: the pure decision table for one bot (wanted state from its linked events);
- ``reconcile``: the one function every trigger calls (the contract is its docstring);
- ``schedule``: Recall's POST/DELETE of an event's bot; ``manage``: PATCH/DELETE of a bot
  and the tenant's lead time;
- ``changes``: before/after diffs → ``bot.*`` webhooks in the same transaction;
- ``dispatch``: the launch job (claim under a lease, launch, record; the state machine);
- ``hooks``: the calls sync and calendar deletion make.
"""
