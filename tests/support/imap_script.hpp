// SPDX-License-Identifier: MIT
// Looking at or changing a test Dovecot's mailboxes from outside tandem: a preauthenticated
// tunnel session driven by a list of commands, parsed by a few regular expressions. It shares
// no code with tandem's IMAP parser, so a test that checks tandem with it checks from outside.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/dovecot.hpp"

namespace tandem::test {

// What the server answered to one command.
struct imap_reply {
    std::string command;  // as sent, without the tag
    std::vector<std::string>
        untagged;  // "* ..." and "+ ..." responses, each with its literals inline, CRLFs kept
    std::string
        status;  // the tagged response without the tag: "OK [APPENDUID 1 2] Append completed."
    bool ok() const { return status.rfind("OK", 0) == 0; }
};

struct imap_transcript {
    std::string greeting;             // "* PREAUTH [CAPABILITY ...] Logged in as alice\r\n"
    std::vector<imap_reply> replies;  // one per command, in order
    std::string text;                 // everything the server sent, byte for byte
    bool ok() const;                  // every command answered OK
};

// Runs `commands` in a preauth session as `user`, one at a time: each is sent with a tag of
// its own ("t1", "t2", ...) and CRLF, and the next one waits for its tagged answer. A command
// may hold literals ("APPEND INBOX {5}\r\nhello"): the whole command is written at once, so a
// synchronizing literal works as well as a LITERAL+ one. Ends with LOGOUT.
// Throws std::runtime_error when the session does not start or a reply does not come in time.
imap_transcript imap_script(const dovecot& server, std::string_view user,
                            const std::vector<std::string>& commands);

// The helpers below throw std::runtime_error, with the transcript, when a command fails.
// Mailbox names are given as sent on the wire (modified UTF-7 for non-ASCII names).

// `name` as an IMAP quoted string.
std::string imap_quote(std::string_view name);

// APPENDs `message` (CRLF line ends expected) with `flags` (e.g. {"\\Seen", "$label"}) and an
// optional INTERNALDATE ("05-Mar-2024 10:20:30 +0100"); returns the UID from APPENDUID.
std::uint32_t append_message(const dovecot& server, std::string_view user, std::string_view mailbox,
                             std::string_view message, const std::vector<std::string>& flags = {},
                             std::string_view internal_date = {});

struct message_flags {
    std::uint32_t uid = 0;
    std::vector<std::string> flags;  // as the server wrote them, sorted, without \Recent
    bool operator==(const message_flags&) const = default;
};
// Every message of the mailbox by UID with its flags (EXAMINE: \Recent stays as it is).
std::vector<message_flags> list_messages(const dovecot& server, std::string_view user,
                                         std::string_view mailbox);

// The whole message (BODY.PEEK[]), or nullopt when there is no such UID.
std::optional<std::string> fetch_message(const dovecot& server, std::string_view user,
                                         std::string_view mailbox, std::uint32_t uid);

struct mailbox_status {
    std::uint32_t messages = 0;
    std::uint32_t uidnext = 0;
    std::uint32_t uidvalidity = 0;
    std::uint64_t highestmodseq = 0;
    std::uint32_t unseen = 0;
};
mailbox_status status(const dovecot& server, std::string_view user, std::string_view mailbox);

void create_mailbox(const dovecot& server, std::string_view user, std::string_view mailbox);
void delete_mailbox(const dovecot& server, std::string_view user, std::string_view mailbox);
void rename_mailbox(const dovecot& server, std::string_view user, std::string_view from,
                    std::string_view to);
// The names from LIST "" "*", in the server's order.
std::vector<std::string> list_mailboxes(const dovecot& server, std::string_view user);

// UID STORE <uid> <op> (<flags>) with op "+FLAGS", "-FLAGS" or "FLAGS".
void store_flags(const dovecot& server, std::string_view user, std::string_view mailbox,
                 std::uint32_t uid, std::string_view op, const std::vector<std::string>& flags);
// Marks \Deleted and UID EXPUNGEs that one message.
void expunge_message(const dovecot& server, std::string_view user, std::string_view mailbox,
                     std::uint32_t uid);
// UID MOVE; returns the UID in `to` (COPYUID).
std::uint32_t move_message(const dovecot& server, std::string_view user, std::string_view from,
                           std::uint32_t uid, std::string_view to);
// UID COPY; returns the UID in `to` (COPYUID).
std::uint32_t copy_message(const dovecot& server, std::string_view user, std::string_view from,
                           std::uint32_t uid, std::string_view to);

// A small RFC 5322 message for the tests, with CRLF line ends.
std::string make_message(std::string_view subject, std::string_view body = "Hello.\r\n",
                         std::string_view message_id = {});

}  // namespace tandem::test
