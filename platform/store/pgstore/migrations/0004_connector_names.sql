-- A connector name has one owner across all tenants ('' is the platform):
-- the registry resolves name@version without knowing who asks. The first
-- version published under a name claims it; the primary key makes the
-- claim atomic, so of two tenants publishing a new name at once exactly one
-- gets it. A claim is never changed or deleted: deleting every version of a
-- name, or its tenant, does not free the name for another publisher.
CREATE TABLE connector_names (
    name       text PRIMARY KEY,
    tenant     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Connectors stored before claims existed keep their owner: the one the
-- registry resolved the name to until now, the platform if it has the name,
-- else the first tenant by name that has, tenants that exist before deleted
-- ones. CreateConnectorVersion applies the same rule to a name it finds
-- with versions but no claim (written by an older VRSky during an upgrade).
INSERT INTO connector_names (name, tenant, created_at)
SELECT DISTINCT ON (c.name) c.name, c.tenant, c.created_at
FROM connectors c
ORDER BY c.name, c.tenant <> '', NOT EXISTS (SELECT 1 FROM tenants t WHERE t.name = c.tenant), c.tenant COLLATE "C";

-- The claim looks connectors up by name alone.
CREATE INDEX connectors_name_idx ON connectors (name);
