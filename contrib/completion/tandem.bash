# SPDX-License-Identifier: MIT
# bash completion for tandem(1). Installed as
# share/bash-completion/completions/tandem; to try it: source contrib/completion/tandem.bash
#
# Completes the commands, the options of each command, files after -c/--config, and the
# channel and store names of the configuration file: the one given with -c/--config on
# the command line being completed, else $XDG_CONFIG_HOME/tandem/tandem.conf, else
# ~/.config/tandem/tandem.conf. Names are read from the [channel.NAME] and [store.NAME]
# section headers (tandem.conf(5)); nothing is run and nothing connects.

# The configuration file of the command line being completed.
_tandem_config_file() {
    local i w file=
    for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
        ((i == COMP_CWORD)) && continue
        w=${COMP_WORDS[i]}
        case $w in
            -c | --config)
                # "--config=FILE" arrives as three words when "=" breaks words.
                if [[ ${COMP_WORDS[i + 1]-} == = ]]; then
                    ((i + 2 != COMP_CWORD)) && file=${COMP_WORDS[i + 2]-}
                elif ((i + 1 != COMP_CWORD)); then
                    file=${COMP_WORDS[i + 1]-}
                fi
                ;;
            --config=*) file=${w#--config=} ;;
            -c?*) file=${w#-c} ;;
        esac
    done
    if [[ -n $file ]]; then
        # The shell has not expanded these yet: a leading ~ and quotes.
        file=${file#\"}
        file=${file%\"}
        file=${file#\'}
        file=${file%\'}
        [[ $file == "~/"* ]] && file=$HOME/${file#"~/"}
        printf '%s\n' "$file"
    elif [[ ${XDG_CONFIG_HOME-} == /* ]]; then
        printf '%s\n' "$XDG_CONFIG_HOME/tandem/tandem.conf"
    else
        printf '%s\n' "$HOME/.config/tandem/tandem.conf"
    fi
}

# The names of the sections of one kind (channel or store) of the configuration file.
_tandem_names() {
    local file
    file=$(_tandem_config_file)
    [[ -r $file ]] || return 0
    sed -n "s/^[[:space:]]*\[[[:space:]]*$1\.\([[:alnum:]_.@+-]*\)[[:space:]]*\].*/\1/p" "$file" 2>/dev/null
}

_tandem() {
    local cur prev cmd i w
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]-}

    # The file after -c, --config, --config=.
    if [[ $prev == -c || $prev == --config ]]; then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
    fi
    if [[ $prev == = && ${COMP_WORDS[COMP_CWORD - 2]-} == --config ]]; then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
    fi
    if [[ $cur == --config=* ]]; then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -P --config= -f -- "${cur#--config=}")
        return 0
    fi

    # The command: the first word that is not an option (nor the file of -c).
    cmd=
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
            -c | --config)
                if [[ ${COMP_WORDS[i + 1]-} == = ]]; then ((i += 2)); else ((i++)); fi
                ;;
            -*) ;;
            *)
                cmd=$w
                break
                ;;
        esac
    done

    local common="-c --config -v --verbose -q --quiet -h --help"
    local opts words=
    case $cmd in
        '')
            opts="--version --help -h"
            words="sync list status watch check-config"
            ;;
        sync)
            opts="$common --dry-run --force --json"
            words=$(_tandem_names channel)
            ;;
        list)
            opts="$common"
            words=$(_tandem_names store)
            ;;
        status)
            opts="$common --json"
            words=$(_tandem_names channel)
            ;;
        watch)
            opts="$common"
            words=$(_tandem_names channel)
            ;;
        check-config)
            opts="$common --connect"
            ;;
        *)
            return 0
            ;;
    esac

    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    else
        mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
    fi
    return 0
}

complete -F _tandem tandem
