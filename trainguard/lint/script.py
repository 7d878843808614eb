"""The static index of one file: its imports, functions, classes and what its modules contain."""

from __future__ import annotations

import ast
import bisect
import operator
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from pathlib import Path

from trainguard.lint.names import ImportMap
from trainguard.lint.vocabulary import (
    FILE_MODELS_BASES,
    HARMLESS_CALLS,
    MODE_DEPENDENT_LAYERS,
    PARAMETER_LAYERS,
    TORCHVISION_MODE_DEPENDENT,
    builds_pretrained_model,
    torch_nn_class,
)

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


# Field types of the node classes' signatures (`Name(identifier id, expr_context ctx)`) that never hold a node.
_PLAIN_FIELD = re.compile(r"(?:identifier|string|constant|int)[?*]? (\w+)")


def _child_fields(node_type: type[ast.AST]) -> tuple[str, ...]:
    """The fields of a node type that may hold nodes: not expression contexts (`Load`, `Store`), nor
    names, strings and constants (a Name, Constant or Attribute then needs at most one look-up)."""
    plain = set(_PLAIN_FIELD.findall(node_type.__doc__ or ""))
    return tuple(name for name in node_type._fields if name != "ctx" and name not in plain)


def walk(tree: ast.AST) -> Iterator[ast.AST]:
    """`ast.walk` in the same order, faster: the fields that may hold nodes are looked up once per
    node type (`_child_fields`)."""
    todo = deque((tree,))
    pop, extend, append = todo.popleft, todo.extend, todo.append
    node_type = ast.AST
    while todo:
        node = pop()
        yield node
        fields = _CHILD_FIELDS.get(type(node))
        if fields is None:
            fields = _CHILD_FIELDS[type(node)] = _child_fields(type(node))
        for name in fields:
            value = getattr(node, name, None)
            if value.__class__ is list:
                extend([item for item in value if isinstance(item, node_type)])
            elif isinstance(value, node_type):
                append(value)
_CALLED = re.compile(r"\s*\(")
_WORD = re.compile(r"\w+")
# Parts shared by many trigger words (the loss functions and classes, the grad-mode words): a text
# without the part holds none of those words.
_WORD_PARTS = ("Loss", "loss", "grad", "entropy")
# Either pattern at the start of a line (a name: names hold no line breaks).
_MODE_DEPENDENT_NAME = re.compile(f"(?:{MODE_DEPENDENT_LAYERS.pattern})|(?:{TORCHVISION_MODE_DEPENDENT.pattern})", re.MULTILINE)


@dataclass
class ClassInfo:
    """A class of the file: its methods and the qualified names of its bases."""

    node: ast.ClassDef
    methods: dict[str, FunctionNode] = field(default_factory=dict)
    base_names: list[str] = field(default_factory=list)


class Script:
    """One parsed file with the indexes the interpreter and rules share."""

    def __init__(self, path: str, source: str, tree: ast.Module, folder: Path | None = None) -> None:
        """`folder`: where the file lies on disk, for its project-local imports (None: none followed)."""
        self.path = path
        self.source = source
        self.tree = tree
        # One walk over the whole tree collects what the rules ask about the file as a whole.
        imports: list[ast.Import | ast.ImportFrom] = []
        names: set[str] = set()
        self.all_functions: list[FunctionNode] = []
        self.all_classes: list[ast.ClassDef] = []
        self.freezes_parameters = False
        self.discarded_calls: set[int] = set()  # calls whose result is thrown away: `model(x)`, `_ = model(x)`
        add_name = names.add
        # `walk`'s order, inlined: a Name's id is taken and a Constant dropped where its parent holds
        # it (about 45% of all nodes), never queued.
        todo: deque[ast.AST] = deque((tree,))
        pop, append = todo.popleft, todo.append
        node_type, name_type, constant_type = ast.AST, ast.Name, ast.Constant
        while todo:
            node = pop()
            kind = type(node)
            if kind is ast.Attribute:
                add_name(node.attr)  # type: ignore[attr-defined]
            elif kind is ast.Call:
                func = node.func  # type: ignore[attr-defined]
                if type(func) is ast.Attribute and func.attr == "requires_grad_":
                    self.freezes_parameters = True
            elif kind is ast.Expr:
                if type(node.value) is ast.Call:  # type: ignore[attr-defined]
                    self.discarded_calls.add(id(node.value))  # type: ignore[attr-defined]
            elif kind is ast.Assign:
                if all(isinstance(t, ast.Name) and t.id == "_" for t in node.targets):  # type: ignore[attr-defined]
                    self.discarded_calls.add(id(node.value))  # type: ignore[attr-defined]
                if any(isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in node.targets):  # type: ignore[attr-defined]
                    self.freezes_parameters = True  # `requires_grad = False`: leaving parameters out is deliberate
            elif kind is ast.Import or kind is ast.ImportFrom:
                imports.append(node)  # type: ignore[arg-type]
                names.update((alias.asname or alias.name).rsplit(".", 1)[-1] for alias in node.names)  # type: ignore[attr-defined]
            elif kind is ast.FunctionDef or kind is ast.AsyncFunctionDef:
                self.all_functions.append(node)  # type: ignore[arg-type]
            elif kind is ast.ClassDef:
                self.all_classes.append(node)  # type: ignore[arg-type]
            fields = _CHILD_FIELDS.get(kind)
            if fields is None:
                fields = _CHILD_FIELDS[kind] = _child_fields(kind)
            for field_name in fields:
                value = getattr(node, field_name, None)
                if value.__class__ is list:
                    for item in value:
                        item_kind = type(item)
                        if item_kind is name_type:
                            add_name(item.id)
                        elif item_kind is not constant_type and isinstance(item, node_type):
                            append(item)
                elif value.__class__ is name_type:
                    add_name(value.id)
                elif value.__class__ is not constant_type and isinstance(value, node_type):
                    append(value)
        self._import_nodes = imports
        self.attribute_names = frozenset(names)
        self.imports = ImportMap(imports)
        self.functions: dict[str, FunctionNode] = {}
        self.classes: dict[str, ClassInfo] = {}
        self._generators: dict[int, bool] = {}
        self._mode_dependent_classes: dict[str, bool] = {}
        self._parameter_classes: dict[str, bool | None] = {}
        self._relevant: dict[frozenset[frozenset[str]], set[int]] = {}
        # Per call node (by id, the node kept so that a reused id never matches): its callee's dotted
        # name through the imports and whether that name says it measures predictions; every trace
        # of the file asks again at each call it evaluates (the interpreter fills this in).
        self.call_names: dict[int, tuple[ast.Call, str | None, bool]] = {}
        # Per loop (or function) node: where each target assigned in it is first assigned (its text ->
        # line), as the traces of the file ask at `+=` in loops.
        self.loop_assignments: dict[int, tuple[ast.AST, dict[str, int]]] = {}
        for statement in tree.body:
            self._index(statement)
        self.method_owner: dict[int, str] = {
            id(item): node.name for node in self.all_classes for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        self._has_yield = "yield" in source
        self.siblings: list[str] = []  # the project modules whose definitions this file imports
        self._sibling_paths: list[Path] = []
        self._nodes: frozenset[int] | None = None
        if folder is not None:
            self._import_siblings(folder)

    def _import_siblings(self, folder: Path) -> None:
        """`from model import GPT` with model.py beside this file: GPT becomes a class of this file.

        Only absolute imports (a script run as `python train.py` imports its siblings that way);
        relative imports belong to packages, library code whose every module would be read again.

        The sibling's own imports come along for the code of its definitions (names this file binds
        otherwise keep this file's meaning); each sibling is read and indexed once per run."""
        for node in self._import_nodes:
            if not isinstance(node, ast.ImportFrom) or not node.module or node.level != 0 or "." in node.module:
                continue
            if node.level == 0 and node.module in self.imports.names:
                continue  # `import model` elsewhere in the file: keep it simple, do not guess
            sibling = load_sibling(folder / f"{node.module}.py")
            if sibling is None or sibling.tree is self.tree:
                continue  # absent, or this very file (parsed once, so its nodes would count as foreign)
            self.siblings.append(node.module)
            self._sibling_paths.append(folder / f"{node.module}.py")
            for alias in node.names:
                local = alias.asname or alias.name
                if alias.name in sibling.classes and self.classes.get(local, sibling.classes[alias.name]) is sibling.classes[alias.name]:
                    self.classes[local] = sibling.classes[alias.name]
                    for base in sibling.classes.values():  # file base classes of the imported class
                        self.classes.setdefault(base.node.name, base)
                elif alias.name in sibling.functions and local not in self.functions:
                    self.functions[local] = sibling.functions[alias.name]
                else:
                    continue
                if self.imports.names.get(local) == f"{node.module}.{alias.name}":
                    del self.imports.names[local]
            for local, name in sibling.imports.names.items():
                self.imports.names.setdefault(local, name)
            self.discarded_calls |= sibling.discarded_calls
            for key, owner in sibling.method_owner.items():
                self.method_owner.setdefault(key, owner)
            self.freezes_parameters = self.freezes_parameters or sibling.freezes_parameters
            self.attribute_names |= sibling.attribute_names
            self._has_yield = self._has_yield or sibling._has_yield

    def _index(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            info = ClassInfo(node, base_names=[self.imports.qualname(b) or getattr(b, "id", "") or "" for b in node.bases])
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    info.methods[item.name] = item
            self.classes[node.name] = info
        elif isinstance(node, (ast.If, ast.Try)):
            # Definitions guarded by `if TYPE_CHECKING` / try-import blocks are still definitions.
            for child in node.body:
                self._index(child)

    def first_base(self, class_name: str) -> str | None:
        """The first base of a file class that is itself a file class (where `super()` looks first)."""
        info = self.classes.get(class_name)
        if info is None:
            return None
        return next((b.rsplit(".", 1)[-1] for b in info.base_names if b.rsplit(".", 1)[-1] in self.classes), None)

    def find_method(self, class_name: str, method: str) -> FunctionNode | None:
        """A method of a file class, looked up through file-defined base classes."""
        seen: set[str] = set()
        while class_name in self.classes and class_name not in seen:
            seen.add(class_name)
            info = self.classes[class_name]
            if method in info.methods:
                return info.methods[method]
            bases = [b.rsplit(".", 1)[-1] for b in info.base_names if b.rsplit(".", 1)[-1] in self.classes]
            if not bases:
                return None
            class_name = bases[0]
        return None

    def is_module_class(self, class_name: str) -> bool:
        """A file class deriving (possibly through file classes) from nn.Module or alike."""
        seen: set[str] = set()
        pending = [class_name]
        while pending:
            name = pending.pop()
            if name in seen or name not in self.classes:
                continue
            seen.add(name)
            for base in self.classes[name].base_names:
                short = base.rsplit(".", 1)[-1]
                if short in FILE_MODELS_BASES and (base.startswith(("torch.", "pytorch_lightning.", "lightning.", "transformers.")) or "." not in base):
                    return True
                pending.append(short)
        return False

    def has_mode_dependent_layers(self, class_name: str) -> bool:
        """The class (or a file class it builds) certainly contains Dropout/BatchNorm-like layers."""
        if class_name not in self._mode_dependent_classes:
            self._mode_dependent_classes[class_name] = self._mode_dependent(class_name, set())
        return self._mode_dependent_classes[class_name]

    def _mode_dependent(self, class_name: str, seen: set[str]) -> bool:
        if class_name in seen or class_name not in self.classes:
            return False
        seen.add(class_name)
        info = self.classes[class_name]
        for node in walk(info.node):
            if isinstance(node, ast.Call) and self.builds_mode_dependent(node, seen):
                return True
        return any(self._mode_dependent(b.rsplit(".", 1)[-1], seen) for b in info.base_names)

    def builds_mode_dependent(self, call: ast.Call, seen: set[str] | None = None) -> bool:
        """A constructor call that certainly yields Dropout/BatchNorm-like layers (Dropout with p > 0)."""
        func = call.func
        qualname = self.imports.qualname(func)
        if qualname:
            layer = torch_nn_class(qualname)
            if layer and layer.startswith(("Dropout", "AlphaDropout", "FeatureAlphaDropout")):
                p = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "p"), None)
                return p is None or isinstance(p, ast.Constant) and isinstance(p.value, (int, float)) and p.value > 0
            if layer and MODE_DEPENDENT_LAYERS.match(layer):
                return True
            if qualname.startswith("torchvision.models.") and TORCHVISION_MODE_DEPENDENT.match(qualname.rsplit(".", 1)[-1]):
                return True
            return False
        if isinstance(func, ast.Name) and func.id in self.classes:
            return self._mode_dependent(func.id, seen if seen is not None else set())
        return False

    def has_parameters(self, class_name: str) -> bool | None:
        """Whether the class holds parameters: True when it (or a file class it builds or derives
        from) builds a layer with weights, an `nn.Parameter` or a known pretrained model; False when
        it certainly builds none (only plain values, buffers and weightless torch layers: a transform,
        a metric); None when something it builds is out of sight (`self.layers = make_layers(cfg)`)."""
        if class_name not in self._parameter_classes:
            self._parameter_classes[class_name] = self._parameters(class_name, set())
        return self._parameter_classes[class_name]

    def _parameters(self, class_name: str, seen: set[str]) -> bool | None:
        if class_name in seen:
            return False  # a cycle adds nothing new
        if class_name not in self.classes:
            return None
        seen.add(class_name)
        info = self.classes[class_name]
        verdicts: list[bool | None] = []
        for base in info.base_names:
            layer = torch_nn_class(base)
            if layer:
                verdicts.append(True if PARAMETER_LAYERS.match(layer) and layer != "Sequential" else False)
            elif base.rsplit(".", 1)[-1] in self.classes:
                verdicts.append(self._parameters(base.rsplit(".", 1)[-1], seen))
            elif base.rsplit(".", 1)[-1] not in ("object", "Generic", "ABC"):
                verdicts.append(None)  # LightningModule, a timm base class, ...: unknown contents
        return self._builds_parameters(info.node, seen, verdicts)

    def _builds_parameters(self, node: ast.AST, seen: set[str], verdicts: list[bool | None]) -> bool | None:
        if True in verdicts:
            return True
        for call in walk(node):
            if isinstance(call, ast.Call):
                verdict = self._call_builds_parameters(call, seen)
                if verdict is True:
                    return True
                verdicts.append(verdict)
        return None if None in verdicts else False

    def _call_builds_parameters(self, node: ast.Call, seen: set[str]) -> bool | None:
        """What one call inside a class tells: weights built (True), none (False), or unknown (None)."""
        func = node.func
        qualname = self.imports.qualname(func)
        if qualname:
            layer = torch_nn_class(qualname)
            if layer and (PARAMETER_LAYERS.match(layer) and layer != "Sequential" or layer == "Parameter") or builds_pretrained_model(qualname):
                return True
            return False if qualname.startswith("torch.") else None
        if isinstance(func, ast.Attribute):
            return True if func.attr == "register_parameter" else False  # methods of tensors, self, locals
        if isinstance(func, ast.Name):
            if func.id in self.classes:
                return self._parameters(func.id, seen)
            if func.id in self.functions:  # `self.features = make_layers(cfg)`
                key = f"def {func.id}"
                if key in seen:
                    return False
                seen.add(key)
                return self._builds_parameters(self.functions[func.id], seen, [])
            return False if func.id in HARMLESS_CALLS or func.id in ("super", "setattr") else None
        return None

    def is_foreign(self, node: ast.AST) -> bool:
        """The node belongs to a project module this file imports definitions from."""
        return any(id(node) in sibling.nodes() for sibling in map(load_sibling, self._sibling_paths) if sibling is not None)

    def mentions(self, text: str) -> bool:
        """The text occurs in this file or in a sibling module it imports definitions from (all the
        code a trace of the file can run): a necessary condition for a keyword argument, say."""
        return text in self.source or any(text in sibling.source for sibling in map(load_sibling, self._sibling_paths) if sibling is not None)

    def nodes(self) -> frozenset[int]:
        """Every node of this file (by id), computed once."""
        if self._nodes is None:
            self._nodes = frozenset(map(id, walk(self.tree)))
        return self._nodes

    def may_build_mode_dependent(self) -> bool:
        """The file names a Dropout/BatchNorm-like layer or a torchvision model that holds one
        (without such a name no model of the file is known to depend on train/eval mode)."""
        names = self.attribute_names | {name.rsplit(".", 1)[-1] for name in self.imports.names.values()}
        return _MODE_DEPENDENT_NAME.search("\n".join(names)) is not None  # one search, not two matches per name

    def relevant_functions(self, groups: frozenset[frozenset[str]]) -> set[int]:
        """The functions (by id) whose code, with the file code they may call, uses every word of
        one of the trigger groups (a rule's `triggers`).

        Read from the source text: a function's lines (decorators included), the file functions,
        classes and methods it calls there (by any receiver), and for a method its class's
        `__init__` (an entry method starts from a constructed instance). A word or a definition's
        name counts where code uses it: after `.` or `@`, called, or as a receiver (`.step`,
        `@no_grad`, `backward(`, `Net(`, `optim.SGD`; never `def backward(`, nor prose that does not
        look like a call; prose that does only makes more functions analysed). Words imported under
        another name (`from torch.nn import DataParallel as DP`) count under that name too. A
        function reached only through a variable (`fn = helper; fn()`) is missed here; the module's
        own trace still runs it."""
        if groups not in self._relevant:
            self._relevant[groups] = self._find_relevant(groups)
        return self._relevant[groups]

    def _find_relevant(self, groups: frozenset[frozenset[str]]) -> set[int]:
        triggers = frozenset().union(*groups)
        if not triggers or not self.all_functions:
            return set()
        meaning = {word: word for word in triggers}
        for local, name in self.imports.names.items():  # `from torch.nn import DataParallel as DP`
            known = [part for part in name.split(".") if part in triggers]
            if known and local not in meaning:
                meaning[local] = known[-1]
        # A word holding a part the text lacks (most loss names) needs no search.
        absent = [part for part in _WORD_PARTS if part not in self.source]
        meaning = {local: word for local, word in meaning.items() if not any(part in local for part in absent)}
        found = list(_occurrences(meaning, self.source))
        if not found:
            return set()
        line_starts = _line_starts(self.source)
        spans: list[tuple[int, int, FunctionNode]] = []
        for function in self.all_functions:
            first_line = min([function.lineno, *(d.lineno for d in function.decorator_list)])
            last_line = min(function.end_lineno or function.lineno, len(line_starts) - 1)
            spans.append((line_starts[first_line - 1], line_starts[last_line], function))
        spans.sort(key=lambda span: (span[0], -span[1]))
        starts = [span[0] for span in spans]
        parents: list[int] = []  # index of the enclosing span (-1: none)
        open_spans: list[int] = []
        for index, (start, end, _) in enumerate(spans):
            while open_spans and spans[open_spans[-1]][1] <= start:
                open_spans.pop()
            parents.append(open_spans[-1] if open_spans else -1)
            open_spans.append(index)

        def enclosing(offset: int) -> Iterator[FunctionNode]:
            """The functions whose text holds this offset, innermost first."""
            index = bisect.bisect_right(starts, offset) - 1
            while index >= 0:
                if offset < spans[index][1]:
                    yield spans[index][2]
                index = parents[index]
        words: dict[int, set[str]] = {id(function): set() for function in self.all_functions}
        source = self.source
        for at, after, word in found:  # the context is checked here
            before = source[at - 1] if at else " "
            if after < len(source) and (source[after].isalnum() or source[after] == "_"):
                continue
            called = _CALLED.match(source, after) or source.startswith(".", after)  # `backward(`, `optim.SGD`
            if before in ".@" or not (before.isalnum() or before == "_") and called and not source.endswith("def ", 0, at):
                for function in enclosing(at):
                    words[id(function)].add(meaning[word])
        # Methods start from an instance their class's __init__ built; a class named runs its __init__.
        inits: dict[int, tuple[str, list[FunctionNode]]] = {}
        for node in self.all_classes:
            init = self.find_method(node.name, "__init__") if node.name in self.classes else None
            methods = [item for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
            init = init or next((item for item in methods if item.name == "__init__"), None)
            if init is not None:
                inits.setdefault(id(init), (node.name, []))[1].extend(item for item in methods if item is not init)
        frontier = [function for function in self.all_functions if words[id(function)]]
        while frontier:  # callers take on what their callees use, to a fixed point
            by_name: dict[str, list[FunctionNode]] = {}
            reached: list[FunctionNode] = []
            for callee in frontier:
                by_name.setdefault(callee.name, []).append(callee)
                if id(callee) in inits:
                    class_name, methods = inits[id(callee)]
                    by_name.setdefault(class_name, []).append(callee)
                    for method in methods:
                        if not words[id(callee)] <= words[id(method)]:
                            words[id(method)] |= words[id(callee)]
                            reached.append(method)
            for at, after, name in _occurrences(by_name, source):
                before = source[at - 1] if at else " "
                if before.isalnum() or before == "_" or after < len(source) and (source[after].isalnum() or source[after] == "_"):
                    continue
                if before != "." and not (_CALLED.match(source, after) and not source.endswith("def ", 0, at)):
                    continue  # named in prose or a definition, not called: `self.forward`, `Net(` and `helper(` count
                for caller in enclosing(at):
                    for callee in by_name[name]:
                        if callee is not caller and not words[id(callee)] <= words[id(caller)]:
                            words[id(caller)] |= words[id(callee)]
                            reached.append(caller)
            frontier = reached
        wordless = frozenset() in groups  # met by every function (no rule asks that, but it would mean so)
        return {id(f) for f in self.all_functions if (wordless or words[id(f)]) and any(group <= words[id(f)] for group in groups)}

    def is_generator(self, function: FunctionNode) -> bool:
        """The function yields (calling it runs nothing yet)."""
        key = id(function)
        if key not in self._generators:
            # Most files hold no `yield` at all: no walk over every called function then.
            self._generators[key] = self._has_yield and any(isinstance(node, (ast.Yield, ast.YieldFrom)) for node in walk(function))
        return self._generators[key]


def _occurrences(words: Iterable[str], source: str) -> Iterator[tuple[int, int, str]]:
    """Occurrences of the words in the text (start, end, word), among them every one that no
    letter, digit or `_` touches, which are all the callers accept.

    Words made of word characters (the names of Python code, save for rare letters such as
    combining marks) are looked for one by one: faster than an alternation, and the whole-word
    occurrences are the same (one made of word characters cannot hide inside another's match).
    Other words: the alternation, longest first."""
    words = list(words)
    if all(_WORD.fullmatch(word) for word in words):
        find = source.find
        for word in words:
            at = find(word)
            while at >= 0:
                after = at + len(word)
                yield at, after, word
                at = find(word, after)
    else:
        for match in re.finditer("|".join(sorted(map(re.escape, words), key=len, reverse=True)), source):
            yield match.start(), match.end(), match.group()


def _line_starts(source: str) -> list[int]:
    r"""Where each line of the text starts, and the text's end: lines as the parser counts them
    (`\r\n`, `\r` or `\n` ends one; str.splitlines would also split at form feeds)."""
    if "\r" in source:
        starts = [0, *(match.end() for match in re.finditer(r"\r\n|\r|\n", source))]
    else:  # the usual text: the same offsets from the lines' lengths, without a match object per line
        lines = source.split("\n")
        starts = [0, *map(operator.add, accumulate(map(len, lines[:-1])), range(1, len(lines)))]
    if starts[-1] != len(source):
        starts.append(len(source))
    return starts


@lru_cache(maxsize=256)
def load_sibling(path: Path) -> Script | None:
    """A project module beside a linted file, parsed and indexed once (None when absent or unreadable).

    Its own siblings are not followed: one level of project imports (the model file of a training script)."""
    from trainguard.lint.source import ParseFailure, read_source

    try:
        if not path.is_file():
            return None
    except OSError:
        return None
    parsed = read_source(path, path.as_posix(), 4 * 1024 * 1024)
    if isinstance(parsed, ParseFailure):
        return None
    return Script(path.as_posix(), parsed.source, parsed.tree)
