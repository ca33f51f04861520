-- Visibility is kept per version: a connector's visibility is its latest
-- version's, also after that version is deleted.
ALTER TABLE connector_versions
    ADD COLUMN visibility text NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private'));
