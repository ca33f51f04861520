-- Connector registry metadata: the marketplace catalogue. Module bytes live
-- in the object store under module_key; digest is their hex SHA-256.

CREATE TABLE connectors (
    -- tenant is '' for connectors every tenant sees (built-ins and
    -- platform uploads), else the owning tenant.
    tenant      text        NOT NULL DEFAULT '',
    name        text        NOT NULL,
    kind        text        NOT NULL,
    visibility  text        NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private')),
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);

CREATE TABLE connector_versions (
    tenant      text        NOT NULL DEFAULT '',
    name        text        NOT NULL,
    version     text        NOT NULL,
    kind        text        NOT NULL,
    manifest    jsonb       NOT NULL,
    digest      text        NOT NULL,
    size        bigint      NOT NULL DEFAULT 0,
    module_key  text        NOT NULL DEFAULT '',
    deprecated  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name, version),
    FOREIGN KEY (tenant, name) REFERENCES connectors (tenant, name) ON DELETE CASCADE
);
CREATE INDEX connector_versions_digest_idx ON connector_versions (digest);
