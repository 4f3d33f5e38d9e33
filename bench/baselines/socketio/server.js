// Baseline (b): the shared-timer plan in Node.js, Express + Socket.IO.
//
// One room per timer. Clients connect with Socket.IO and `join` a timer's room; one interval
// broadcasts every timer's remaining time to its room once a second, and a timeout change is
// broadcast to the room at once. State is in memory.
//
// node server.js PORT
const crypto = require("crypto");
const http = require("http");
const express = require("express");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || 8092);
const app = express();
app.use(express.json());
const server = http.createServer(app);
const io = new Server(server);

const timers = new Map();

function tick(timer) {
  const remaining = Math.max(0, timer.deadline - Date.now());
  return {
    id: timer.id,
    remaining_seconds: remaining / 1000,
    deadline: new Date(timer.deadline).toISOString(),
    timeout_seconds: timer.seconds,
  };
}

app.post("/timers", (req, res) => {
  const seconds = Number(req.body.seconds || 300);
  const id = crypto.randomBytes(16).toString("base64url");
  const timer = { id, seconds, deadline: Date.now() + seconds * 1000 };
  timers.set(id, timer);
  res.status(201).json({ id, deadline: new Date(timer.deadline).toISOString() });
});

app.post("/timers/:id/timeout", (req, res) => {
  const timer = timers.get(req.params.id);
  if (!timer) return res.status(404).json({ error: "not_found" });
  timer.deadline = Date.now() + Number(req.body.seconds) * 1000;
  io.to(timer.id).emit("tick", tick(timer));
  res.json({ id: timer.id, deadline: new Date(timer.deadline).toISOString() });
});

app.get("/healthz", (_req, res) => res.json({ status: "ok" }));

io.on("connection", (socket) => {
  socket.on("join", (id) => {
    const timer = timers.get(id);
    if (!timer) return;
    socket.join(id);
    socket.emit("tick", tick(timer));
  });
});

// Once a second, every timer's remaining time to its room.
setInterval(() => {
  for (const timer of timers.values()) {
    io.to(timer.id).emit("tick", tick(timer));
  }
}, 1000);

server.listen(port, "127.0.0.1", 4096, () => {
  console.error(`socket.io baseline listening on 127.0.0.1:${port}`);
});
