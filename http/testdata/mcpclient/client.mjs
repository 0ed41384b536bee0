// client.mjs drives the official MCP TypeScript SDK against an alknet node
// for http/mcp_ts_test.go.
//
//	node client.mjs <mcp-url> [<token>...]
//
// For each token (an empty string means no Authorization header) it opens a
// streamable HTTP session, lists the tools, calls demo_add, demo_teapot (an
// operation that always fails) and demo_ticks (a bounded subscription), and
// prints one JSON array with a result object per token on stdout. A call
// that throws is reported as {"thrown": message} so the Go test can show
// it; anything else that goes wrong exits non-zero with the error on
// stderr.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, ...tokens] = process.argv.slice(2);
if (!url) {
  console.error("usage: node client.mjs <mcp-url> [<token>...]");
  process.exit(2);
}

// call returns the result of fn, or {thrown} when it throws.
async function call(fn) {
  try {
    return await fn();
  } catch (err) {
    return { thrown: String(err?.message ?? err) };
  }
}

// session runs the scripted calls with one token.
async function session(token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers },
  });
  const client = new Client({ name: "alknet-ts-interop", version: "1.0.0" });
  await client.connect(transport);
  try {
    const { tools } = await client.listTools();
    return {
      server: client.getServerVersion(),
      tools: tools.map((t) => t.name).sort(),
      add: await call(() => client.callTool({ name: "demo_add", arguments: { a: 2, b: 5 } })),
      teapot: await call(() => client.callTool({ name: "demo_teapot", arguments: {} })),
      ticks: await call(() =>
        client.callTool({ name: "demo_ticks", arguments: { input: { n: 50 }, max_events: 3 } }),
      ),
    };
  } finally {
    await client.close();
  }
}

const results = [];
for (const token of tokens.length ? tokens : [""]) {
  results.push(await session(token));
}
process.stdout.write(JSON.stringify(results) + "\n");
