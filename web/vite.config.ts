import { defineConfig } from "vitest/config";

// Served by the gateway under /app (serve_apps/gateway/web_app.py); nothing from a CDN.
export default defineConfig({
  base: "/app/",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: true,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
