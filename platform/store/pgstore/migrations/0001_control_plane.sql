-- The control plane: tenants, their API keys and integrations.

-- Every write takes its revision from one sequence, so a revision is never
-- reused, not even by a record deleted and created again under its name.
CREATE SEQUENCE revisions;

CREATE TABLE tenants (
    name                    text PRIMARY KEY,
    display_name            text        NOT NULL DEFAULT '',
    max_integrations        integer     NOT NULL DEFAULT 0,
    max_messages_per_second integer     NOT NULL DEFAULT 0,
    max_storage_bytes       bigint      NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    revision                bigint      NOT NULL DEFAULT nextval('revisions')
);

-- Only the SHA-256 of a key's text is stored.
CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    tenant     text        NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    hash       bytea       NOT NULL,
    name       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant, id);

CREATE TABLE integrations (
    tenant        text        NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    name          text        NOT NULL,
    spec          jsonb       NOT NULL,
    -- desired_state is what the operator asked for; actual_state is what the
    -- runtime last reported (empty until it does).
    desired_state text        NOT NULL CHECK (desired_state IN ('running', 'stopped', '')),
    actual_state  text        NOT NULL DEFAULT '',
    actual_error  text        NOT NULL DEFAULT '',
    actual_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    revision      bigint      NOT NULL DEFAULT nextval('revisions'),
    PRIMARY KEY (tenant, name)
);
