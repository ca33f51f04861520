-- Service discovery of tenants' NATS (issue 13). placement is where the
-- operator wants the tenant's NATS to live ('shared', 'dedicated', or ''
-- for shared); tenant_endpoints says where it lives now. A tenant without
-- an endpoint row lives on the platform servers.
ALTER TABLE tenants ADD COLUMN placement text NOT NULL DEFAULT '';

CREATE TABLE tenant_endpoints (
    tenant     text PRIMARY KEY REFERENCES tenants (name) ON DELETE CASCADE,
    placement  text        NOT NULL,
    url        text        NOT NULL DEFAULT '',
    account    text        NOT NULL DEFAULT '',
    -- moving is the store.Endpoint the tenant is being moved to, as JSON;
    -- NULL when it is not moving.
    moving     jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- From the one sequence every table takes its revisions from, so a
    -- revision is never reused, not even by a tenant created again.
    revision   bigint      NOT NULL DEFAULT nextval('revisions')
);
