// Response bodies of the API routes the pages call (serve_apps/gateway/schemas.py).
import type { Citation, Report } from "./conversation";

export interface Persona {
  slug: string;
  name: string;
  role: string;
  company: string;
}

export interface Scenario {
  id: string;
  slug: string;
  title: string;
  stage: string;
  difficulty: string;
  description: string;
  personas: Persona[];
}

export interface StoredTurn {
  seq: number;
  speaker: string;
  text: string;
  client_turn_id: string | null;
  reply_to: number | null;
  citations: Citation[];
}

export interface Session {
  id: string;
  status: string;
  mode: "practice" | "assessment" | "conversation";
  created_at: string;
  scenario: Scenario;
  stream_url: string;
  turns: StoredTurn[];
}

export interface AgentEvent {
  reply_to: number | null;
  agent: string;
  kind: string;
  payload: Record<string, unknown>;
  created_at: string;
}

export interface SessionReport {
  session_id: string;
  status: string;
  evaluation: Report | null;
  events: AgentEvent[];
}

export interface MyCourse {
  slug: string;
  title: string;
  mode: "practice" | "assessment";
  pass_score: number;
  due_at: string | null;
  scenarios: { slug: string; title: string; best_score: number | null; passed: boolean }[];
  completed: boolean;
}

export interface SkillTrend {
  user_id: string;
  skills: { skill: string; points: { session_id: string; at: string; score: number }[]; first: number; best: number; improvement: number }[];
}

export interface ScoreDistribution {
  bucket: number;
  buckets: { low: number; high: number; sessions: number }[];
  scored: number;
  passed: number;
}

export interface SessionSummary {
  id: string;
  user_id: string;
  scenario: string;
  scenario_title: string;
  mode: string;
  status: string;
  created_at: string;
  score: number | null;
  passed: boolean | null;
  reviewed_score: number | null;
}

export interface User {
  id: string;
  email: string;
  display_name: string;
  role: "admin" | "manager" | "trainee";
  active: boolean;
  invited: boolean;
  teams: string[];
}

export interface Team {
  id: string;
  name: string;
  members: string[];
}
