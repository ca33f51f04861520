import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

// The bundle is served by `vrsky serve` under /ui/ (ui/embed.go); build.sh
// writes it to dist/ and stamps the sources' hash next to it.
export default defineConfig({
  base: "/ui/",
  plugins: [react(), tailwindcss()],
  build: {
    outDir: "dist",
    // dist/.keep is committed so that go:embed compiles on a fresh clone;
    // build.sh builds into a fresh folder and swaps it in.
    emptyOutDir: false,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8080", "/hooks": "http://127.0.0.1:8080" },
  },
});
