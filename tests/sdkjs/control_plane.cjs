// Drives Carillon's control plane with the unmodified aws-sdk-js-v3 client
// (@aws-sdk/client-chime-sdk-meetings, installed in web/node_modules by `npm ci`).
//
//   node tests/sdkjs/control_plane.cjs <endpoint>
//
// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Prints one JSON object
// with what each call returned; tests/sdkjs/test_aws_sdk_js.py checks it.
"use strict";

const path = require("node:path");
const { createRequire } = require("node:module");

const webRequire = createRequire(path.join(__dirname, "..", "..", "web", "package.json"));
const sdk = webRequire("@aws-sdk/client-chime-sdk-meetings");

async function main() {
  const endpoint = process.argv[2];
  const client = new sdk.ChimeSDKMeetingsClient({
    endpoint,
    region: "us-east-1",
    maxAttempts: 1,
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID,
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
    },
  });
  const out = {};

  const created = await client.send(
    new sdk.CreateMeetingWithAttendeesCommand({
      ClientRequestToken: "sdk-js-" + Date.now(),
      MediaRegion: "us-east-1",
      ExternalMeetingId: "sdk-js meeting",
      MeetingFeatures: { Audio: { EchoReduction: "AVAILABLE" } },
      Tags: [{ Key: "team", Value: "carillon" }],
      Attendees: [{ ExternalUserId: "alice" }, { ExternalUserId: "bob" }],
    }),
  );
  const meetingId = created.Meeting.MeetingId;
  out.created = {
    meetingId,
    status: created.$metadata.httpStatusCode,
    signalingUrl: created.Meeting.MediaPlacement.SignalingUrl,
    attendees: created.Attendees.map((a) => a.ExternalUserId),
    joinTokenLength: created.Attendees[0].JoinToken.length,
  };

  const carol = await client.send(
    new sdk.CreateAttendeeCommand({
      MeetingId: meetingId,
      ExternalUserId: "carol",
      Capabilities: { Audio: "SendReceive", Video: "Receive", Content: "None" },
    }),
  );
  out.carol = carol.Attendee.Capabilities;

  const batch = await client.send(
    new sdk.BatchCreateAttendeeCommand({
      MeetingId: meetingId,
      Attendees: [{ ExternalUserId: "dave" }, { ExternalUserId: "aws:reserved" }],
    }),
  );
  out.batch = {
    attendees: batch.Attendees.map((a) => a.ExternalUserId),
    errors: batch.Errors.map((e) => [e.ExternalUserId, e.ErrorCode]),
  };

  const names = [];
  let nextToken;
  do {
    const page = await client.send(
      new sdk.ListAttendeesCommand({ MeetingId: meetingId, MaxResults: 2, NextToken: nextToken }),
    );
    names.push(...page.Attendees.map((a) => a.ExternalUserId));
    nextToken = page.NextToken;
  } while (nextToken);
  out.listed = names.sort();

  const tags = await client.send(
    new sdk.ListTagsForResourceCommand({ ResourceARN: created.Meeting.MeetingArn }),
  );
  out.tags = tags.Tags;

  try {
    await client.send(
      new sdk.GetMeetingCommand({ MeetingId: "00000000-0000-4000-8000-000000000000" }),
    );
    out.missing = "no error";
  } catch (error) {
    out.missing = {
      name: error.name,
      status: error.$metadata.httpStatusCode,
      fault: error.$fault,
      message: error.message,
    };
  }

  const deleted = await client.send(new sdk.DeleteMeetingCommand({ MeetingId: meetingId }));
  out.deleted = deleted.$metadata.httpStatusCode;
  try {
    await client.send(new sdk.GetMeetingCommand({ MeetingId: meetingId }));
    out.afterDelete = "still there";
  } catch (error) {
    out.afterDelete = error.name;
  }

  const bad = new sdk.ChimeSDKMeetingsClient({
    endpoint,
    region: "us-east-1",
    maxAttempts: 1,
    credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: "wrong" },
  });
  try {
    await bad.send(new sdk.GetMeetingCommand({ MeetingId: meetingId }));
    out.badSignature = "accepted";
  } catch (error) {
    out.badSignature = { name: error.name, status: error.$metadata.httpStatusCode };
  }

  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
