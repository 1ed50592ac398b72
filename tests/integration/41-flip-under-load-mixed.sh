#!/bin/bash
# 41-flip-under-load.sh on a realistic mixed set (gencerts --mix 3000: apex +
# wildcard, wildcard only, multi-SAN, RSA twins, IDN, two-intermediate
# chains, expired, not yet valid): 64 clients pick from every covered name
# (wildcards instantiated, about 8,800) while the supervisor flips 30 times,
# the health gate sampling the mixed names. Expected: 0 failed connections.
SV_MIX=1 SV_NCERTS=3000 SV_FLIPS_MIN=${SV_FLIPS_MIN:-30}
. "$(dirname "$0")/41-flip-under-load.sh"
