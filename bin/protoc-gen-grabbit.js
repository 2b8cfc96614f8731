#!/usr/bin/env node
// buf and protoc run this with a CodeGeneratorRequest on stdin.
import { main } from "../dist/generator/main.js";
main();
