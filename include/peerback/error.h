/* peerback error codes.
 *
 * Actions return 0 on success and a negative number on failure. System errors
 * are -errno; peerback's own errors live in [-1999, -1000], in one block per
 * layer, and pb_strerror() turns either into a sentence a user understands. */
#ifndef PEERBACK_ERROR_H
#define PEERBACK_ERROR_H

#include "peerback/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_ERR_MIN (-1999)
#define PB_ERR_MAX (-1000)

/* X-macro: name, value, sentence. Blocks: -1000 general, -1100 protocol,
 * -1200 qr, -1300 account/pairing, -1400 store, -1500 data kinds,
 * -1600 behaviours (nfc, instructions, agent). */
#define PB_ERRNO_MAP(X)                                                        \
	X(INVAL, -1000, "invalid argument")                                    \
	X(NOMEM, -1001, "out of memory")                                       \
	X(TOOBIG, -1002, "input is larger than the allowed maximum")           \
	X(TRUNCATED, -1003, "input ended too early")                           \
	X(MALFORMED, -1004, "input is malformed")                              \
	X(NOTFOUND, -1005, "not found")                                        \
	X(EXISTS, -1006, "already exists")                                     \
	X(TIMEOUT, -1007, "timed out")                                         \
	X(CANCELED, -1008, "canceled")                                         \
	X(NOKEY, -1009, "a required key is missing")                           \
	X(STATE, -1010, "operation not allowed in the current state")          \
	X(UNSUPPORTED, -1011, "not supported")                                 \
	X(IO, -1012, "input/output error")                                     \
	X(NOSPACE, -1013, "no space left on the device")                       \
	X(BUSY, -1014, "busy; try again later")                                \
	X(FRAME_TOOBIG, -1100, "frame longer than the 65535-byte limit")       \
	X(FRAME_TRUNCATED, -1101, "connection closed in the middle of a frame") \
	X(NOISE_DECRYPT, -1102, "message failed authentication (wrong key or tampered data)") \
	X(NOISE_HANDSHAKE, -1103, "secure handshake failed")                   \
	X(NOISE_PATTERN, -1104, "unknown or unsupported Noise pattern")         \
	X(NOISE_NONCE, -1105, "channel nonce exhausted; session must be restarted") \
	X(NOISE_DH, -1106, "Diffie-Hellman produced an invalid result")        \
	X(ENV_VERSION, -1107, "peer speaks an unsupported protocol version")   \
	X(ENV_MALFORMED, -1108, "peer sent a malformed message")               \
	X(ENV_UNEXPECTED, -1109, "peer sent a message that was not expected now") \
	X(SEQ_TOOBIG, -1110, "peer sent a message sequence over the size limit") \
	X(PEER_CLOSED, -1111, "peer closed the connection")                    \
	X(PEER_ERROR, -1112, "peer reported an error")                         \
	X(URI_SCHEME, -1200, "not a peerback pairing URI (expected peerback://pair?...)") \
	X(URI_VERSION, -1201, "pairing URI has an unsupported version")        \
	X(URI_MISSING, -1202, "pairing URI lacks a required parameter")        \
	X(URI_BASE64, -1203, "pairing URI has a key or secret that is not valid base64url") \
	X(URI_KEYLEN, -1204, "pairing URI has a key or secret of the wrong length") \
	X(URI_TOOLONG, -1205, "pairing URI is too long")                       \
	X(URI_EXPIRED, -1206, "pairing QR code has expired; ask the host for a new one (peerback host)") \
	X(URI_ADDR, -1207, "pairing URI has an invalid address")               \
	X(URI_DUPLICATE, -1208, "pairing URI repeats a parameter")             \
	X(QR_ENCODE, -1209, "could not encode the QR code")                    \
	X(QR_NOTFOUND, -1210, "no peerback QR code found in the image")        \
	X(QR_IMAGE, -1211, "could not read the image file")                    \
	X(QR_DECODER, -1212, "reading QR images needs libzbar0 (apt-get install libzbar0)") \
	X(ACCT_WRONG, -1300, "the other device is logged into a different account") \
	X(ACCT_CERT, -1301, "device certificate is not signed by the account service") \
	X(ACCT_CERT_EXPIRED, -1302, "device certificate has expired; log in again (peerback account login)") \
	X(ACCT_SIG, -1303, "signature does not match this session")           \
	X(ACCT_TICKET, -1304, "connect ticket is invalid or for another session") \
	X(ACCT_TICKET_REPLAY, -1305, "connect ticket was already used")        \
	X(ACCT_SECRET_USED, -1306, "pairing QR code was already used; ask the host for a new one") \
	X(ACCT_SECRET_EXPIRED, -1307, "pairing QR code has expired; ask the host for a new one (peerback host)") \
	X(ACCT_UNKNOWN_DEVICE, -1308, "device is not paired with this host")  \
	X(ACCT_REVOKED, -1309, "device pairing was revoked on the host")       \
	X(ACCT_RATE, -1310, "too many failed attempts; wait and try again")   \
	X(ACCT_LOGIN, -1311, "wrong account id or password")                   \
	X(ACCT_NOT_LOGGED_IN, -1312, "not logged in; run peerback account login first") \
	X(ACCT_SERVICE, -1313, "account service refused the request")          \
	X(ACCT_NOT_LINKED, -1314, "accounts are not linked")                   \
	X(ACCT_NOT_PAIRED, -1315, "no paired host; run peerback pair first")   \
	X(ACCT_DEVICE_TAKEN, -1330, "this device id belongs to another device's keys; a device keeps the id and keys it first logged in with") \
	X(ACCT_NAME, -1331, "name is empty, longer than 64 bytes, not valid UTF-8, or contains control characters") \
	X(STORE_CORRUPT, -1400, "backup store is damaged")                     \
	X(STORE_HASH, -1401, "stored data does not match its hash")            \
	X(STORE_NOSNAP, -1402, "no such snapshot")                             \
	X(STORE_NOCHUNK, -1403, "a chunk the snapshot needs is missing")       \
	X(STORE_LOCKED, -1404, "backup store is in use by another process")    \
	X(STORE_NOMASTER, -1405, "no master key; set a recovery passphrase first") \
	X(STORE_PASSPHRASE, -1406, "wrong recovery passphrase")                \
	X(STORE_VERIFY, -1407, "restored data differs from the backup")        \
	X(STORE_MASTER_MISMATCH, -1430, "the host holds a different wrapped master key for this phone; nothing was sent (the recovery passphrase would not restore a backup there)") \
	X(STORE_WEAKPASS, -1431, "recovery passphrase too weak: use at least 12 characters, 5 different") \
	X(STORE_WRONG_KEY, -1432, "wrong key: the backup was made with another master key; the account's recovery passphrase opens it") \
	X(STORE_ROLLBACK, -1420, "the host's latest snapshot is older than the last backup this phone completed there") \
	X(STORE_QUOTA, -1408, "this device's storage quota on the host is used up; the host's owner can raise it (peerback host quota)") \
	X(DATA_FORMAT, -1500, "file is not in the expected format")            \
	X(DATA_CHECKSUM, -1501, "a check digit or checksum is wrong")          \
	X(DATA_BCC, -1502, "MIFARE block 0 BCC does not match the UID")        \
	X(DATA_ACCESS_BITS, -1503, "MIFARE access bits are inconsistent")      \
	X(DATA_VALUE_BLOCK, -1504, "MIFARE value block is inconsistent")       \
	X(DATA_SIZE, -1505, "dump has a size no MIFARE card has")              \
	X(DATA_FIELD, -1506, "a field has an invalid value")                   \
	X(DATA_EXPIRED, -1507, "credential has expired")                       \
	X(DATA_KIND, -1508, "unknown data kind")                               \
	X(DATA_LINK, -1520, "a symbolic link where peerback reads or writes data; links are not followed") \
	X(NFC_NO_TXN, -1600, "no NFC transaction in progress")                 \
	X(NFC_UNREACHABLE, -1601, "no paired host answered in time")           \
	X(M1_PERMISSION, -1602, "operation key does not match the sector's reference key") \
	X(M1_ACCESS, -1603, "the sector's access bits forbid this write")      \
	X(INSTR_REFUSED, -1604, "instruction refused")                         \
	X(INSTR_UNVOUCHED, -1630, "the other device of this copy is not vouched for by the account service") \
	X(NET_DISALLOWED, -1605, "backup not allowed on the current network type")

typedef enum {
#define PB__ERR_ENUM(name, value, text) PB_E##name = value,
	PB_ERRNO_MAP(PB__ERR_ENUM)
#undef PB__ERR_ENUM
} pb_errno_t;

/* Returns a sentence describing err (a PB_E* code or -errno). The string is
 * static and must not be freed. */
PB_EXTERN const char *pb_strerror(int err);

/* Returns the symbolic name ("PB_EACCT_WRONG", "ENOENT", ...) of err, for logs
 * and JSON output. Static string. */
PB_EXTERN const char *pb_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
