// The admin's pages (filled in below): people, content, knowledge base, audit log.
export function AdminPeople() {
  return <section><h1>People</h1></section>;
}
export function AdminContent() {
  return <section><h1>Training content</h1></section>;
}
export function AdminKnowledge() {
  return <section><h1>Knowledge base</h1></section>;
}
export function AdminAudit() {
  return <section><h1>Audit log</h1></section>;
}
