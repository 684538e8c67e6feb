// The knowledge base: upload, chunking, the search tester, versions made live.
import { useState } from "preact/hooks";
import { api } from "../../api";
import { ErrorNote, formatDate, useLoad } from "../../ui";
import { fieldNotes } from "./fields";

interface KnowledgeBase {
  slug: string;
  chunking: { chunk_words: number; overlap_words: number; split_on_headings: boolean };
  live_version: number | null;
  versions: number[];
  documents: { id: string; filename: string; title: string; size_bytes: number; chunks: number; created_at: string }[];
}

interface SearchHit {
  chunk: { chunk_id: string; title: string; heading?: string | null; text: string };
  stages: Record<string, { score: number; rank: number }>;
}

export function AdminKnowledge() {
  const bases = useLoad(() => api.get<KnowledgeBase[]>("/v1/knowledge-bases"));
  const [slug, setSlug] = useState("product");
  const kb = useLoad(() => api.get<KnowledgeBase>(`/v1/knowledge-bases/${slug}`), [slug]);
  const [progress, setProgress] = useState<number | null>(null);
  const [uploadNote, setUploadNote] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<SearchHit[] | null>(null);

  async function upload(e: Event) {
    const input = e.currentTarget as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    setError(null);
    setUploadNote(null);
    setProgress(0);
    try {
      const out = await api.upload<{ title?: string; chunks?: number }>(`/v1/knowledge-bases/${slug}/documents`, file, file.name, setProgress);
      setUploadNote(`${file.name} is indexed${out?.chunks != null ? ` (${out.chunks} chunks)` : ""}.`);
      kb.reload();
    } catch (err) {
      setError(err);
    } finally {
      setProgress(null);
      input.value = "";
    }
  }

  async function search(e: Event) {
    e.preventDefault();
    setError(null);
    try {
      setHits((await api.get<{ hits: SearchHit[] }>(`/v1/knowledge-bases/${slug}/search?q=${encodeURIComponent(query)}&top_k=5`)).hits);
    } catch (err) {
      setError(err);
    }
  }

  async function activate(version: number) {
    setError(null);
    try {
      await api.post(`/v1/knowledge-bases/${slug}/versions/${version}/activate`);
      kb.reload();
    } catch (err) {
      setError(err);
    }
  }

  async function reindex() {
    setError(null);
    try {
      await api.post(`/v1/knowledge-bases/${slug}/reindex`);
      kb.reload();
    } catch (err) {
      setError(err);
    }
  }

  const k = kb.data;
  return (
    <section>
      <h1>Knowledge base</h1>
      <label>
        Knowledge base
        <select value={slug} onChange={(e) => setSlug(e.currentTarget.value)}>
          {(bases.data ?? [{ slug }]).map((b) => (
            <option key={b.slug} value={b.slug}>
              {b.slug}
            </option>
          ))}
        </select>
      </label>
      <ErrorNote error={error ?? kb.error} />
      {k && (
        <>
          <p class="muted" data-testid="kb-status">
            Live version {k.live_version ?? "none"} · versions kept {k.versions.join(", ") || "—"} · chunks of{" "}
            {k.chunking.chunk_words} words, {k.chunking.overlap_words} overlapping
          </p>
          <div class="row">
            {k.versions.map((v) => (
              <button key={v} disabled={v === k.live_version} onClick={() => activate(v)}>
                {v === k.live_version ? `Version ${v} (live)` : `Make version ${v} live`}
              </button>
            ))}
            <button onClick={reindex}>Re-index into a new version</button>
          </div>
          <Chunking key={k.slug} slug={k.slug} chunking={k.chunking} onSaved={kb.reload} />
          <h2>Documents</h2>
          <ul class="plain" data-testid="documents">
            {k.documents.map((d) => (
              <li key={d.id}>
                <strong>{d.title}</strong> <span class="muted small">{d.filename} · {d.chunks} chunks · {formatDate(d.created_at)}</span>
              </li>
            ))}
          </ul>
        </>
      )}
      <label>
        Upload a document (PDF, DOCX, TXT, Markdown)
        <input name="document" type="file" accept=".pdf,.docx,.txt,.md,.markdown" onChange={upload} />
      </label>
      {progress != null && <progress max={1} value={progress} aria-label="Upload progress" />}
      {uploadNote && <p role="status">{uploadNote}</p>}
      <h2>Search tester</h2>
      <form class="row" onSubmit={search}>
        <label class="grow">
          Query
          <input name="query" required value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <button class="primary" type="submit">
          Search
        </button>
      </form>
      {hits && (
        <ol class="plain" data-testid="search-hits">
          {hits.length === 0 && <li class="muted">Nothing found.</li>}
          {hits.map((h) => (
            <li key={h.chunk.chunk_id} class="card">
              <strong>
                {h.chunk.title}
                {h.chunk.heading ? ` — ${h.chunk.heading}` : ""}
              </strong>
              <p class="small">{h.chunk.text.slice(0, 300)}</p>
              <p class="small muted">
                {["dense", "sparse", "fused", "reranked"]
                  .filter((s) => h.stages[s])
                  .map((s) => `${s}: #${h.stages[s].rank} (${h.stages[s].score.toFixed(3)})`)
                  .join(" · ")}
              </p>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

/** A knowledge base's chunking; the next re-index cuts its documents this way. */
function Chunking(props: { slug: string; chunking: KnowledgeBase["chunking"]; onSaved: () => void }) {
  const [words, setWords] = useState(String(props.chunking.chunk_words));
  const [overlap, setOverlap] = useState(String(props.chunking.overlap_words));
  const [headings, setHeadings] = useState(props.chunking.split_on_headings);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  // The check that the overlap is below the chunk size is about the whole chunking.
  const fields = fieldNotes(error, "chunking", { chunking: "chunking.overlap_words" });

  async function save(e: Event) {
    e.preventDefault();
    setError(null);
    setSaved(false);
    try {
      const chunking = { chunk_words: Number(words), overlap_words: Number(overlap), split_on_headings: headings };
      await api.put(`/v1/knowledge-bases/${props.slug}`, { chunking });
      setSaved(true);
      props.onSaved();
    } catch (err) {
      setError(err);
    }
  }

  return (
    <form class="card stack" onSubmit={save} aria-label="Chunking" data-testid="chunking">
      <h2>Chunking</h2>
      <div>
        <label>
          Words per chunk
          <input name="chunk-words" type="number" required min={16} max={2000} value={words} onInput={(e) => setWords(e.currentTarget.value)} {...fields.invalid("chunking.chunk_words")} />
        </label>
        {fields.note("chunking.chunk_words")}
      </div>
      <div>
        <label>
          Words repeated from the previous chunk
          <input name="overlap-words" type="number" required min={0} max={1999} value={overlap} onInput={(e) => setOverlap(e.currentTarget.value)} {...fields.invalid("chunking.overlap_words")} />
        </label>
        {fields.note("chunking.overlap_words")}
      </div>
      <label>
        <input name="split-on-headings" type="checkbox" checked={headings} onChange={(e) => setHeadings(e.currentTarget.checked)} /> Never let a chunk cross a heading
      </label>
      {fields.rest(["chunking.chunk_words", "chunking.overlap_words"])}
      {saved && <p role="status">Saved. Re-index to cut the documents this way.</p>}
      <button class="primary" type="submit">
        Save chunking
      </button>
    </form>
  );
}
