# shellcheck shell=bash
# era_blocks: the block numbers of an era_invalidate report (Debian's
# thin-provisioning-tools) on stdin, one per line: <block block="N"/> and
# <range begin="B" end = "E"/> (E excluded).
# Usage: source scripts/lib/era.bash; era_invalidate ... | era_blocks
era_blocks() {
	local b e
	sed -n -E 's/.*<block block *= *"([0-9]+)".*/\1 \1/p; s/.*<range begin *= *"([0-9]+)" end *= *"([0-9]+)".*/\1 \2/p' |
		while read -r b e; do
			[[ $b == "$e" ]] && e=$((e + 1))
			seq "$b" $((e - 1))
		done
}
