-- Members who joined through the signup page, keyed by their Open Humans project member ID.
CREATE TABLE members (
    project_member_id TEXT PRIMARY KEY NOT NULL,
    username TEXT,
    sources_shared TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
