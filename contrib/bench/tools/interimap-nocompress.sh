# SPDX-License-Identifier: MIT
# interimap with COMPRESS off on the TCP side (compress = NO).
INTERIMAP_COMPRESS=NO
. "$(dirname "${BASH_SOURCE[0]}")/interimap.sh"
