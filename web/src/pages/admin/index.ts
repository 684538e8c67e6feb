// The manager's and admin's pages: one chunk, loaded when one of them is opened (app.tsx), so a
// trainee's first load does not carry the editors.
export { AdminAudit } from "./audit";
export { AdminContent } from "./content";
export { AdminKnowledge } from "./knowledge";
export { AdminPeople } from "./people";
