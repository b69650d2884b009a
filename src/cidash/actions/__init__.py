"""Actions from the terminal (core, no UI): trigger or retry the CI-image build, recompute cache keys.

Each mutating action is a plan you can show, then an execution; the CLI (``cidash rebuild``/``retry``) and the
dashboard call the same functions::

    from cidash.actions import execute, follow, plan_rebuild, resolve_actor
    from cidash.remote.mutations import ActionsRemote

    remote = ActionsRemote(client)                       # a cidash.remote.GitLabClient
    plan = plan_rebuild(remote, project, ref="main")     # read-only GETs; plan.lines(), plan.refusal
    result = execute(plan, remote, store, actor=resolve_actor(remote), now=now)   # audited; raises in words
    for update in follow(remote, project.id, result.job.id):                     # until the job starts
        ...

Keys: :func:`plan_key_recompute_local` / :func:`write_key`, :func:`remote_key_status`.
"""

from cidash.actions.base import (
    ACTIVE_STATUSES,
    ActionHttpError,
    ActionPlan,
    ActionRemote,
    ActionResult,
    AuditSink,
    CancelPlan,
    FollowUpdate,
    HttpCall,
    RebuildPlan,
    RetryPlan,
    execute,
    explain_error,
    follow,
    local_actor,
    merge_variables,
    parse_variable,
    read_only_refusal,
    record_declined,
    refuse,
    resolve_actor,
)
from cidash.actions.keys import (
    KeyPlan,
    KeySpec,
    KeyWriteResult,
    RemoteKeyStatus,
    key_matches,
    plan_key_recompute_local,
    remote_key_status,
    write_key,
)
from cidash.actions.rebuild import (
    DEFAULT_BUILD_JOB,
    DEFAULT_REBUILD_VARIABLES,
    plan_cancel,
    plan_rebuild,
    plan_retry,
)

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_BUILD_JOB",
    "DEFAULT_REBUILD_VARIABLES",
    "ActionHttpError",
    "ActionPlan",
    "ActionRemote",
    "ActionResult",
    "AuditSink",
    "CancelPlan",
    "FollowUpdate",
    "HttpCall",
    "KeyPlan",
    "KeySpec",
    "KeyWriteResult",
    "RebuildPlan",
    "RemoteKeyStatus",
    "RetryPlan",
    "execute",
    "explain_error",
    "follow",
    "key_matches",
    "local_actor",
    "merge_variables",
    "parse_variable",
    "plan_cancel",
    "plan_key_recompute_local",
    "plan_rebuild",
    "plan_retry",
    "read_only_refusal",
    "record_declined",
    "refuse",
    "remote_key_status",
    "resolve_actor",
    "write_key",
]
