-- PLACEHOLDER on branch wip-multi only: schema version 8 is the lead's issue-8 migration (capability_sets) on main.
-- It exists here so that 0009 keeps its number; on merge, take main's 0008-capability-sets.sql and drop this one.
SELECT 1;
