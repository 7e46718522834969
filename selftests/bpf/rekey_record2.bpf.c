// SPDX-License-Identifier: GPL-2.0
/* The recording policy under a second name, for the tests of which policy
 * decides for which socket.
 */
#define REC_NAME record2
#include "rekey_record.bpf.c"
