import http from "node:http";
import { ChimeSDKMeetingsClient, CreateMeetingCommand, GetMeetingCommand, ListAttendeesCommand,
  BatchCreateAttendeeCommand, DeleteMeetingCommand, ListTagsForResourceCommand } from "@aws-sdk/client-chime-sdk-meetings";
import fs from "node:fs";
const records = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const pairs = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) pairs.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    records.push({ method: req.method, target: req.url, headers: pairs, body_b64: body.toString("base64"), now: Date.now() / 1000 });
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end("{}");
  });
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const port = server.address().port;
const client = new ChimeSDKMeetingsClient({ endpoint: `http://127.0.0.1:${port}`, region: "eu-central-1",
  credentials: { accessKeyId: "AKIDEXAMPLEJS", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }, maxAttempts: 1 });
const mid = "4f0f5b1c-7d8e-4a44-9d0c-2b9e6a1f3c55";
const calls = [
  ["create_meeting", new CreateMeetingCommand({ ClientRequestToken: "tok-js", MediaRegion: "us-east-1", ExternalMeetingId: "m1" })],
  ["get_meeting", new GetMeetingCommand({ MeetingId: mid })],
  ["list_attendees", new ListAttendeesCommand({ MeetingId: mid, MaxResults: 10, NextToken: "a b/c+d" })],
  ["batch_create_attendee", new BatchCreateAttendeeCommand({ MeetingId: mid, Attendees: [{ ExternalUserId: "u3" }] })],
  ["delete_meeting", new DeleteMeetingCommand({ MeetingId: mid })],
  ["list_tags_for_resource", new ListTagsForResourceCommand({ ResourceARN: `arn:aws:chime:us-east-1:123456789012:meeting/${mid}` })],
];
const out = [];
for (const [name, cmd] of calls) {
  const before = records.length;
  try { await client.send(cmd); } catch (e) { console.error(name, e.name, e.message); }
  const r = records[before];
  out.push({ name: `js-v3-${name}`, operation: name, ...r });
}
const tokClient = new ChimeSDKMeetingsClient({ endpoint: `http://127.0.0.1:${port}`, region: "us-west-2",
  credentials: { accessKeyId: "ASIAEXAMPLEJS", secretAccessKey: "session/secret+example", sessionToken: "FwoGZXIvYXdzEXAMPLE//token==" }, maxAttempts: 1 });
{ const before = records.length; await tokClient.send(new GetMeetingCommand({ MeetingId: mid }));
  out.push({ name: "js-v3-get_meeting-session-token", operation: "get_meeting", ...records[before] }); }
fs.writeFileSync("js_captured.jsonl", out.map((o) => JSON.stringify(o)).join("\n") + "\n");
server.close();
console.log(JSON.stringify(out[0], null, 1));
console.log(out.map(o => o.method + " " + o.target).join("\n"));
